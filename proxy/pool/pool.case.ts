// The conformance suite every strategy runs (as hono runs every router through one suite): what a
// pool promises whatever its strategy. Each strategy's test file calls runPoolCases(name) and adds
// its own specific tests. Pure: a fake clock, no sockets.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import type { TargetSpec } from '../spec.ts';
import { targetSpec } from '../testing.ts';
import type { StrategyName } from './strategy.ts';
import { FULL, type TargetPool } from './target-pool.ts';
import { TargetTable } from './target-table.ts';
import { prng as prngFor } from '../testing.ts';

export interface Clock {
  t: number;
  now: () => number;
}

export function clock(start = 1_700_000_000_000): Clock {
  const c: Clock = { t: start, now: () => c.t };
  return c;
}

export function target(raw: string, weight = 1, backup = false, maxConnections?: number): TargetSpec {
  const t = { ...targetSpec(raw), weight, backup };
  return maxConnections === undefined ? t : { ...t, maxConnections };
}

export interface Fixture {
  table: TargetTable;
  pool: TargetPool;
  clock: Clock;
  panics: boolean[];
}

/** A table and one pool over `targets` (strings are weight 1, primary). */
export function fixture(strategy: StrategyName, targets: (string | TargetSpec)[], outlier = true, seed = 1): Fixture {
  const c = clock();
  const panics: boolean[] = [];
  const table = new TargetTable({
    strategy,
    outlierDetection: outlier ? { consecutiveFailures: 3, ejectMs: 10_000, maxEjectMs: 300_000, maxEjectPercent: 100 } : null,
    now: c.now,
    random: prngFor(seed),
    onPanic: (p) => panics.push(p.panic),
  });
  const pool = table.pool('default', targets.map((t) => (typeof t === 'string' ? target(t) : t)));
  return { table, pool, clock: c, panics };
}

/** Pick once as a finished connection would: the pick, then release (keeps counts at 0). */
export function pickRaw(pool: TargetPool, key?: string, tried: Uint8Array | null = null): string | undefined {
  const i = pool.pick(key, tried);
  if (i < 0) return undefined;
  const state = pool.entries[i]!.state;
  pool.release(state);
  return state.raw;
}

/** Counts per target over `n` picks, each with its own client key. */
export function spread(pool: TargetPool, n: number, hold = false): Map<string, number> {
  const counts = new Map<string, number>();
  for (let k = 0; k < n; k++) {
    const key = `10.0.${k >> 8}.${k & 255}`;
    const i = pool.pick(key, null);
    const state = pool.entries[i]!.state;
    if (!hold) pool.release(state);
    counts.set(state.raw, (counts.get(state.raw) ?? 0) + 1);
  }
  return counts;
}

function fail(f: Fixture, raw: string, times: number): void {
  const state = f.table.get(raw)!;
  for (let k = 0; k < times; k++) {
    state.activeConnections++; // as pick() would have counted it
    f.pool.report(state, '127.0.0.1:1', 'refused', 'ECONNREFUSED');
  }
}

const A = '127.0.0.1:1001';
const B = '127.0.0.1:1002';
const C = '127.0.0.1:1003';

export interface CaseOptions {
  /** Spreads connections by Weight (all but `first`). */
  readonly weighted: boolean;
}

export function runPoolCases(strategy: StrategyName, opts: CaseOptions): void {
  test(`${strategy}: an empty pool picks nothing`, () => {
    const f = fixture(strategy, []);
    assert.equal(f.pool.pick('10.0.0.1', null), -1);
  });

  test(`${strategy}: a one-target pool always picks it`, () => {
    const f = fixture(strategy, [A]);
    for (let k = 0; k < 20; k++) assert.equal(pickRaw(f.pool, `10.0.0.${k}`), A);
  });

  test(`${strategy}: every target gets picked for some client (no target is starved)`, () => {
    const f = fixture(strategy, [A, B, C]);
    const seen = spread(f.pool, 300);
    if (strategy === 'first') assert.deepEqual([...seen.keys()], [A]);
    else assert.deepEqual([...seen.keys()].sort(), [A, B, C]);
  });

  for (const state of ['down', 'drain'] as const) {
    test(`${strategy}: skips a target the daemon marks ${state}, and uses it again once up`, () => {
      const f = fixture(strategy, [A, B, C]);
      f.table.applyHealth({ [A]: state, [B]: 'up' });
      assert.equal(spread(f.pool, 300).get(A), undefined);
      f.table.applyHealth({ [A]: 'up', [B]: 'up', [C]: 'up' });
      if (strategy !== 'first') assert.ok((spread(f.pool, 300).get(A) ?? 0) > 0);
      else assert.equal(pickRaw(f.pool), A);
    });
  }

  test(`${strategy}: skips an ejected target until its ejection runs out`, () => {
    const f = fixture(strategy, [A, B, C]);
    fail(f, A, 3);
    assert.equal(f.table.get(A)!.state(f.clock.t), 'ejected');
    assert.equal(spread(f.pool, 300).get(A), undefined);
    f.clock.t += 10_000;
    assert.notEqual(f.table.get(A)!.state(f.clock.t), 'ejected');
    if (strategy !== 'first') assert.ok((spread(f.pool, 300).get(A) ?? 0) > 0);
    else assert.equal(pickRaw(f.pool), A);
  });

  test(`${strategy}: back from an ejection, a target gets one trial attempt at a time; its result decides`, () => {
    const f = fixture(strategy, [A, B]);
    fail(f, A, 3);
    f.clock.t += 10_000;
    const a = f.table.get(A)!;
    // Picks (other targets' connections end at once) until one lands on A: that is its trial.
    const pickA = (round: number): boolean => {
      for (let k = 0; k < 50; k++) {
        const i = f.pool.pick(`10.${round}.0.${k}`, null);
        if (f.pool.entries[i]!.state === a) return true;
        f.pool.release(f.pool.entries[i]!.state);
      }
      return false;
    };
    assert.ok(pickA(3), 'A is picked again once its ejection ran out');
    assert.ok(a.probing);
    assert.equal(spread(f.pool, 100).get(A), undefined, 'no second attempt while the trial runs');
    f.pool.report(a, '127.0.0.1:1001', 'timeout', 'ETIMEDOUT');
    assert.equal(a.state(f.clock.t), 'ejected', 'a failed trial ejects it again');
    assert.equal(a.ejectedUntil - f.clock.t, 20_000, 'for twice as long');
    f.clock.t += 20_000;
    assert.ok(pickA(4));
    f.pool.report(a, '127.0.0.1:1001', 'ok');
    assert.equal(a.probing, false);
    assert.equal(a.ejections, 0, 'a good trial resets the doubling');
    assert.ok(a.usable(f.clock.t));
  });

  test(`${strategy}: panic: when no target is usable the pool uses all of them, and says so once`, () => {
    const f = fixture(strategy, [A, B, C]);
    f.table.applyHealth({ [A]: 'down', [B]: 'drain' });
    fail(f, C, 3);
    const seen = spread(f.pool, 300);
    assert.ok(f.pool.panic && f.table.panic);
    if (strategy === 'first') assert.deepEqual([...seen.keys()], [A]);
    else assert.deepEqual([...seen.keys()].sort(), [A, B, C]);
    assert.deepEqual(f.panics, [true], 'one panic episode, reported once');
    f.table.applyHealth({ [A]: 'down', [B]: 'up' }); // absent = unknown, so A stays down explicitly
    assert.equal(pickRaw(f.pool), B);
    assert.equal(f.pool.panic, false);
    assert.deepEqual(f.panics, [true, false]);
  });

  test(`${strategy}: backup targets get connections only when no primary is usable`, () => {
    const f = fixture(strategy, [target(A), target(B, 1, true), target(C)]);
    assert.equal(spread(f.pool, 300).get(B), undefined);
    f.table.applyHealth({ [A]: 'down' });
    assert.equal(spread(f.pool, 300).get(B), undefined, 'one primary left is enough');
    fail(f, C, 3);
    assert.deepEqual([...spread(f.pool, 50).keys()], [B]);
    assert.equal(f.pool.panic, false, 'a usable backup is no panic');
  });

  test(`${strategy}: a retry avoids targets this job already tried, while there are others`, () => {
    const f = fixture(strategy, [A, B, C]);
    for (let k = 0; k < 30; k++) {
      const tried = new Uint8Array(3);
      const key = `10.1.0.${k}`;
      const seen = new Set<string>();
      for (let attempt = 0; attempt < 3; attempt++) {
        const i = f.pool.pick(key, tried);
        f.pool.release(f.pool.entries[i]!.state);
        seen.add(f.pool.entries[i]!.state.raw);
        tried[i] = 1;
      }
      assert.equal(seen.size, 3, 'three attempts, three different targets');
      // All tried: the pool still answers (a second pass).
      assert.ok(f.pool.pick(key, tried) >= 0);
    }
  });

  test(`${strategy}: a retry tries a usable target again before an ejected one`, () => {
    const f = fixture(strategy, [A, B]);
    fail(f, B, 3);
    const tried = new Uint8Array([1, 0]);
    assert.equal(pickRaw(f.pool, '10.0.0.1', tried), A);
  });

  test(`${strategy}: picks only candidates, whatever the mix of states (randomized)`, () => {
    const raws = [A, B, C, '127.0.0.1:1004', '127.0.0.1:1005'];
    const rnd = prngFor(7);
    for (let round = 0; round < 200; round++) {
      const f = fixture(strategy, raws.map((r) => target(r, 1 + Math.floor(rnd() * 3), rnd() < 0.2)), true, round);
      const health: Record<string, 'up' | 'down' | 'drain' | 'unknown'> = {};
      for (const r of raws) health[r] = (['up', 'down', 'drain', 'unknown'] as const)[Math.floor(rnd() * 4)]!;
      f.table.applyHealth(health);
      const usable = f.pool.entries.filter((e) => e.state.usable(f.clock.t));
      const primaries = usable.filter((e) => !e.backup);
      const allowed = new Set((primaries.length > 0 ? primaries : usable.length > 0 ? usable : f.pool.entries).map((e) => e.state.raw));
      for (let k = 0; k < 10; k++) {
        const raw = pickRaw(f.pool, `10.2.${round}.${k}`)!;
        assert.ok(allowed.has(raw), `round ${round}: picked ${raw}, allowed ${[...allowed].join(',')}`);
      }
    }
  });

  test(`${strategy}: counts a connection per pick until it fails or is released`, () => {
    const f = fixture(strategy, [A]);
    const s = f.table.get(A)!;
    f.pool.pick(undefined, null);
    f.pool.pick(undefined, null);
    assert.equal(s.activeConnections, 2);
    f.pool.report(s, '127.0.0.1:1001', 'refused', 'ECONNREFUSED');
    f.pool.report(s, '127.0.0.1:1001', 'ok');
    assert.equal(s.activeConnections, 1, 'the failed attempt is no connection; the ok one is');
    f.pool.release(s);
    assert.equal(s.activeConnections, 0);
  });

  test(`${strategy}: a target at its MaxConnections is skipped; the others take the rest`, () => {
    const f = fixture(strategy, [target(A, 1, false, 2), target(B)]);
    const held = spread(f.pool, 50, true);
    // Unlimited, every strategy would give A far more than 2 of 50 held connections.
    assert.deepEqual([held.get(A), held.get(B)], [2, 48]);
    assert.equal(f.table.get(A)!.activeConnections, 2);
    assert.equal(f.pool.panic, false, 'a full target is no panic');
  });

  test(`${strategy}: every target full → FULL (no panic, nothing counted); a release makes room again`, () => {
    const f = fixture(strategy, [target(A, 1, false, 2), target(B, 1, false, 1)]);
    const held = spread(f.pool, 3, true);
    assert.deepEqual([held.get(A), held.get(B)], [2, 1]);
    assert.equal(f.pool.pick('10.9.0.1', null), FULL);
    assert.equal(f.pool.pick('10.9.0.1', new Uint8Array([1, 0])), FULL, 'also on a retry');
    assert.equal(f.pool.panic, false);
    assert.deepEqual(f.panics, []);
    assert.equal(f.table.get(A)!.activeConnections + f.table.get(B)!.activeConnections, 3);
    f.pool.release(f.table.get(B)!);
    assert.equal(pickRaw(f.pool, '10.9.0.2'), B, 'the freed slot is used');
  });

  test(`${strategy}: a full backup is skipped too; all full → FULL`, () => {
    const f = fixture(strategy, [target(A, 1, false, 1), target(B, 1, true, 1)]);
    assert.deepEqual([...spread(f.pool, 2, true).keys()].sort(), [A, B]);
    assert.equal(f.pool.pick(undefined, null), FULL);
  });

  test(`${strategy}: healthy targets full and the rest down → FULL, not panic onto the down ones`, () => {
    const f = fixture(strategy, [target(A, 1, false, 1), target(B)]);
    f.table.applyHealth({ [A]: 'up', [B]: 'down' });
    assert.equal(spread(f.pool, 1, true).get(A), 1);
    assert.equal(f.pool.pick(undefined, null), FULL);
    assert.equal(f.pool.panic, false);
  });

  test(`${strategy}: panic never overloads a full target: it uses the others, and FULL when all are full`, () => {
    const f = fixture(strategy, [target(A, 1, false, 1), target(B, 1, false, 1), target(C)]);
    f.table.applyHealth({ [A]: 'down', [B]: 'down', [C]: 'down' });
    const held = spread(f.pool, 30, true);
    assert.ok(f.pool.panic);
    assert.ok((held.get(A) ?? 0) <= 1 && (held.get(B) ?? 0) <= 1, `A ${held.get(A)}, B ${held.get(B)}: limit 1 each`);
    const g = fixture(strategy, [target(A, 1, false, 1), target(B, 1, false, 1)]);
    g.table.applyHealth({ [A]: 'down', [B]: 'down' });
    spread(g.pool, 2, true);
    assert.equal(g.pool.pick(undefined, null), FULL);
  });

  test(`${strategy}: a waiter is woken when a slot frees (oldest first), and when a target comes back up`, () => {
    const f = fixture(strategy, [target(A, 1, false, 1), target(B)]);
    f.table.applyHealth({ [A]: 'up', [B]: 'down' });
    spread(f.pool, 1, true);
    const got: string[] = [];
    const waiter = (name: string) => ({
      slotFreed: () => {
        const i = f.pool.pick(undefined, null);
        if (i === FULL) return false;
        got.push(`${name}:${f.pool.entries[i]!.state.raw}`);
        return true;
      },
    });
    assert.equal(f.pool.pick(undefined, null), FULL);
    f.pool.waitForSlot(waiter('w1'));
    f.pool.waitForSlot(waiter('w2'));
    const w3 = waiter('w3');
    f.pool.waitForSlot(w3);
    f.pool.cancelWait(w3);
    assert.equal(f.table.waiting, 2);
    f.pool.release(f.table.get(A)!);
    assert.deepEqual(got, [`w1:${A}`], 'one slot, one waiter');
    f.table.applyHealth({ [A]: 'up', [B]: 'up' });
    assert.deepEqual(got, [`w1:${A}`, `w2:${B}`]);
    assert.equal(f.table.waiting, 0);
  });

  test(`${strategy}: a pool without MaxConnections never answers FULL`, () => {
    const f = fixture(strategy, [A, B]);
    for (let k = 0; k < 500; k++) assert.ok(f.pool.pick(`10.3.${k >> 8}.${k & 255}`, null) >= 0);
  });

  if (opts.weighted) {
    test(`${strategy}: spreads new connections by Weight (3:1)`, () => {
      const f = fixture(strategy, [target(A, 3), target(B, 1)]);
      // Held connections make the counting strategies spread by count; the others ignore them.
      const counts = spread(f.pool, 4000, true);
      const share = (counts.get(A) ?? 0) / 4000;
      assert.ok(share > 0.68 && share < 0.82, `heavy target share ${share.toFixed(3)} (want ~0.75)`);
    });
  }
}
