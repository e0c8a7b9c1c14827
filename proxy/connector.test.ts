// The connector's retry policy as a table, against real loopback ports: refused (a port closed and
// kept closed), blackholed (SYNs unanswered) and live. Time is observed, never bounded above.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { ConnectError, Connector, type ConnectResult } from './connector.ts';
import { DnsCache } from './dns-cache.ts';
import { TargetPool, type PoolHost } from './pool/target-pool.ts';
import { RoundRobin } from './pool/round-robin.ts';
import { TargetState, type AttemptResult } from './pool/target-state.ts';
import { closedPorts, startBlackhole, startEcho, targetSpec } from './testing.ts';

interface Recorded { at: number; target: string; result: AttemptResult }

/** A pool over `raws` whose host records every reported attempt (the seam the connector talks to). */
function recordingPool(raws: string[]): { pool: TargetPool; records: Recorded[]; states: TargetState[] } {
  const records: Recorded[] = [];
  const states = raws.map((r) => new TargetState(targetSpec(r), Date.now()));
  const entries = states.map((state) => ({ state, weight: 1, backup: false }));
  const host: PoolHost = {
    now: Date.now,
    record: (state, _endpoint, result) => void records.push({ at: performance.now(), target: state.raw, result }),
    panicChanged: () => {},
    slotFreed: () => {},
    waitForSlot: () => {},
    cancelWait: () => {},
  };
  return { pool: new TargetPool('test', entries, new RoundRobin(entries), host), records, states };
}

function connect(pool: TargetPool, budgetMs: number, attemptTimeoutMs = 2000): Promise<{ err: ConnectError | null; res: ConnectResult | null; ms: number; calls: number }> {
  const connector = new Connector({ app: 'test', dns: new DnsCache(), budgetMs, attemptTimeoutMs });
  const t0 = performance.now();
  return new Promise((resolve) => {
    let calls = 0;
    connector.connect(pool, undefined, Date.now(), (err, res) => {
      calls++;
      // A second callback would land after this one: wait a turn to see it.
      setTimeout(() => resolve({ err, res, ms: performance.now() - t0, calls }), 50);
    });
  });
}

const cases: { name: string; refused: number; budgetMs: number; attempts: number; waitsAfter: number[] }[] = [
  // max(3, 2n) attempts; after every n failed attempts (a pass), wait 100 ms × pass.
  { name: 'one refused target: 3 attempts, waits 100 and 200 ms', refused: 1, budgetMs: 5000, attempts: 3, waitsAfter: [1, 2] },
  { name: 'two refused targets: 4 attempts, one wait of 100 ms after the first pass', refused: 2, budgetMs: 5000, attempts: 4, waitsAfter: [2] },
  { name: 'three refused targets: 6 attempts, a wait after the first pass', refused: 3, budgetMs: 5000, attempts: 6, waitsAfter: [3] },
  { name: 'the budget cuts the waits short: one target, 250 ms budget, 2 attempts', refused: 1, budgetMs: 250, attempts: 2, waitsAfter: [1] },
];

for (const c of cases) {
  test(`retry policy: ${c.name}`, async (t) => {
    const ports = await closedPorts(t, c.refused);
    const { pool, records, states } = recordingPool(ports.map((p) => `127.0.0.1:${p}`));
    const r = await connect(pool, c.budgetMs);
    assert.equal(r.calls, 1, 'the callback fires once');
    assert.ok(r.err instanceof ConnectError);
    assert.equal(r.err.code, 'ERR_CONNECT_EXHAUSTED');
    assert.equal(r.err.attempts, c.attempts);
    assert.equal(records.length, c.attempts, 'each attempt reported once');
    assert.ok(records.every((x) => x.result === 'refused'));
    // Each full pass tries every target once (the pool avoids the ones this job already tried).
    for (let k = 0; k + c.refused <= records.length; k += c.refused) {
      assert.equal(new Set(records.slice(k, k + c.refused).map((x) => x.target)).size, c.refused, `pass from attempt ${k + 1}`);
    }
    for (const after of c.waitsAfter) {
      const pass = after / c.refused;
      const gap = records[after]!.at - records[after - 1]!.at;
      const want = Math.min(100 * pass, c.budgetMs);
      // Refused answers take about a millisecond; the gap is the wait (a few ms of slack for clocks).
      if (after < records.length) assert.ok(gap >= want - 5, `wait after attempt ${after}: ${gap.toFixed(1)} ms, want ≥ ${want}`);
    }
    if (c.budgetMs < 1000) assert.ok(r.ms >= c.budgetMs - 5, `gave up after ${r.ms.toFixed(0)} ms, before the budget`);
    assert.ok(states.every((s) => s.activeConnections === 0), 'no connection left counted');
  });
}

test('retry policy: a blackholed target costs one attempt timeout, then the next target serves', async (t) => {
  const hole = await startBlackhole();
  t.after(hole.stop);
  const live = await startEcho('live');
  t.after(() => live.close());
  const { pool, records, states } = recordingPool([`127.0.0.1:${hole.port}`, `127.0.0.1:${live.port}`]);
  const r = await connect(pool, 5000, 300);
  t.after(() => r.res?.socket.destroy());
  assert.equal(r.err, null);
  assert.equal(r.res?.attempts, 2);
  assert.deepEqual(records.map((x) => x.result), ['timeout', 'ok']);
  assert.ok(r.ms >= 295, `the blackhole cost its timeout: ${r.ms.toFixed(0)} ms`);
  assert.deepEqual(states.map((s) => s.activeConnections), [0, 1], 'the connected target counts the session until it is released');
  pool.release(r.res!.state);
  assert.equal(states[1]!.activeConnections, 0);
});

test('retry policy: the attempt timeout is cut to what is left of the budget', async (t) => {
  const hole = await startBlackhole();
  t.after(hole.stop);
  const { pool, records } = recordingPool([`127.0.0.1:${hole.port}`]);
  const r = await connect(pool, 400, 2000);
  assert.equal(r.err?.attempts, 1);
  assert.deepEqual(records.map((x) => x.result), ['timeout']);
  assert.match(r.err?.message ?? '', /after 1 attempt\(s\) in \d+ ms; last target "127\.0\.0\.1:\d+" \(127\.0\.0\.1:\d+\): ETIMEDOUT/);
});

test('retry policy: a cancelled job releases its attempt and never calls back', async (t) => {
  const hole = await startBlackhole();
  t.after(hole.stop);
  const { pool, records, states } = recordingPool([`127.0.0.1:${hole.port}`]);
  const connector = new Connector({ app: 'test', dns: new DnsCache(), budgetMs: 5000, attemptTimeoutMs: 300 });
  let called = false;
  const job = connector.connect(pool, undefined, Date.now(), () => { called = true; });
  assert.equal(states[0]!.activeConnections, 1);
  job.cancel();
  assert.equal(states[0]!.activeConnections, 0);
  await new Promise((r) => setTimeout(r, 400));
  assert.equal(called, false);
  assert.deepEqual(records, [], 'a cancelled attempt is no verdict on the target');
});

test('retry policy: an empty pool fails at once with no attempt', async () => {
  const { pool } = recordingPool([]);
  const r = await connect(pool, 1000);
  assert.equal(r.err?.attempts, 0);
  assert.match(r.err?.message ?? '', /no targets/);
});
