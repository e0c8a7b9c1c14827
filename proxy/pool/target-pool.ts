// TargetPool: the targets one route (or the app's default) picks from, and the one place a target
// is chosen. pick() decides which entries are candidates, in this order, and lets the strategy
// choose among the first non-empty set:
//   1. usable primaries not yet tried by this connect job
//   2. usable backups not yet tried
//   3. usable primaries, then usable backups, even if tried (a retry pass)
//   4. panic: no target of the pool is usable (ejected, down or drain), so every target is a
//      candidate, untried ones first: health alone never makes an app unreachable (Envoy's panic
//      threshold at 100 %). The pool says so once per episode (TargetTable's onPanic).
// A target at its MaxConnections (per process) is skipped in every step, panic included: panic must
// not overload it. When the only healthy targets are full, or panic finds every target full, pick()
// returns FULL and the caller queues (waitForSlot) or refuses; a full pool is no panic.
// report() feeds each attempt's result to the shared per-target state (TargetTable).
//
// Invariants: pick() allocates nothing (one candidate array per pool, reused; single-threaded);
// each pick counts one connection on the chosen target until report() says it failed or release()
// says the session closed, so strategies see connections in progress too; a target on probation
// (back from an ejection, see outlier-detection.ts) gets one trial attempt at a time.
import type { Strategy, PoolEntry } from './strategy.ts';
import type { AttemptResult, TargetState } from './target-state.ts';

/** pick(): every target the pool may use now is at its MaxConnections. */
export const FULL = -2;

/** A connection waiting for a slot on a target with MaxConnections (see waitForSlot). */
export interface SlotWaiter {
  /** A slot may be free: pick again. True = done waiting (it took a slot or gave up): drop it. */
  slotFreed(): boolean;
}

/** What a pool needs from the table its targets' state lives in. */
export interface PoolHost {
  now(): number;
  record(state: TargetState, endpoint: string | undefined, result: AttemptResult, error: string | null): void;
  panicChanged(pool: TargetPool): void;
  /** A connection to a target with MaxConnections ended. */
  slotFreed(): void;
  waitForSlot(w: SlotWaiter): void;
  cancelWait(w: SlotWaiter): void;
}

const PRIMARY = 0;
const BACKUP = 1;
const ANY = 2;

export class TargetPool {
  /** For logs: "default" or the route's first SNI name. */
  readonly name: string;
  readonly entries: readonly PoolEntry[];
  readonly #strategy: Strategy;
  readonly #host: PoolHost;
  readonly #candidate: Uint8Array;
  /** Some target has MaxConnections: only then does pick() look at fullness. */
  readonly #limited: boolean;
  /** Set by #fill: a target was usable but full (so the pool is full, not in panic). */
  #sawFull = false;
  /** Set while every target of the pool is unusable. */
  panic = false;

  constructor(name: string, entries: readonly PoolEntry[], strategy: Strategy, host: PoolHost) {
    this.name = name;
    this.entries = entries;
    this.#strategy = strategy;
    this.#host = host;
    this.#candidate = new Uint8Array(entries.length);
    this.#limited = entries.some((e) => e.state.maxConnections !== 0);
  }

  get size(): number {
    return this.entries.length;
  }

  /**
   * Index of the entry to try next for a client (`key`: its address); -1 for an empty pool, FULL
   * when every target it may use is at its MaxConnections (only pools with such limits).
   * `tried[i] === 1` marks entries this connect job already tried (null: none yet).
   */
  pick(key: string | undefined, tried: Uint8Array | null): number {
    if (this.entries.length === 0) return -1;
    const now = this.#host.now();
    this.#sawFull = false;
    let count = this.#fill(now, PRIMARY, tried);
    if (count === 0) count = this.#fill(now, BACKUP, tried);
    if (count === 0 && tried !== null) {
      count = this.#fill(now, PRIMARY, null);
      if (count === 0) count = this.#fill(now, BACKUP, null);
    }
    // Healthy but full targets: wait for one of them, don't panic onto the unhealthy ones.
    const panic = count === 0 && !this.#sawFull;
    if (panic) {
      count = this.#fill(now, ANY, tried);
      if (count === 0) count = this.#fill(now, ANY, null);
    }
    if (panic !== this.panic) {
      this.panic = panic;
      this.#host.panicChanged(this);
    }
    if (count === 0) return FULL;
    const i = this.#strategy.pick(this.#candidate, count, key);
    const state = this.entries[i]!.state;
    state.activeConnections++;
    // Back from an ejection: this attempt is its trial; no other until it ends.
    if (state.ejections > 0) state.probing = true;
    return i;
  }

  /** How an attempt at entry `i`'s target ended; a failure also ends the connection pick() counted. */
  report(state: TargetState, endpoint: string | undefined, result: AttemptResult, error: string | null = null): void {
    if (result !== 'ok') {
      state.activeConnections--;
      if (state.maxConnections !== 0) this.#host.slotFreed();
    }
    this.#host.record(state, endpoint, result, error);
  }

  /** The session (or a cancelled attempt) that pick() counted is gone. */
  release(state: TargetState): void {
    state.activeConnections--;
    state.probing = false;
    if (state.maxConnections !== 0) this.#host.slotFreed();
  }

  /** After pick() said FULL: `w.slotFreed()` is called (in order of waiting) when a slot may be free. */
  waitForSlot(w: SlotWaiter): void {
    this.#host.waitForSlot(w);
  }

  /** `w` stops waiting (its queue timeout ran out, or its client left). Idempotent. */
  cancelWait(w: SlotWaiter): void {
    this.#host.cancelWait(w);
  }

  #fill(now: number, mode: number, tried: Uint8Array | null): number {
    const entries = this.entries;
    const candidate = this.#candidate;
    const limited = this.#limited;
    let count = 0;
    for (let i = 0; i < entries.length; i++) {
      const e = entries[i]!;
      let ok = (tried === null || tried[i] !== 1) && (mode === ANY || (e.backup === (mode === BACKUP) && e.state.usable(now)));
      if (limited && ok && e.state.full()) {
        ok = false;
        if (mode !== ANY) this.#sawFull = true;
      }
      candidate[i] = ok ? 1 : 0;
      if (ok) count++;
    }
    return count;
  }
}
