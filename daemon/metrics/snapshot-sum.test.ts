// Adding snapshots of many listener processes: counters and histograms add, gauges of retired
// processes do not count.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { ListenerMetrics } from '../../proxy/metrics/listener-metrics.ts';
import { addSnapshots, connectionsTotal, countersOnly, emptySnapshot } from './snapshot-sum.ts';

function snapshot(outcomes: string[], active: number, target = 'a:1') {
  const m = new ListenerMetrics('web');
  for (const o of outcomes) {
    m.attempt(target, o === 'ok' ? null : Object.assign(new Error(), { code: 'ECONNREFUSED' }));
    m.closed({ outcome: o, code: o === 'ok' ? undefined : 'ERR_CONNECT_EXHAUSTED', bytesIn: 1, bytesOut: 2, durationS: 0.01, connectS: o === 'ok' ? 0.001 : -1, handshakeS: -1 });
  }
  return m.snapshot({ activeConnections: active, targetActive: { [target]: active }, dns: { hit: 1, miss: 1, stale: 0, error: 0 } });
}

test('two workers add up: outcomes, reasons, bytes, attempts per target, histograms, gauges', () => {
  const sum = addSnapshots(addSnapshots(emptySnapshot('web'), snapshot(['ok', 'ok'], 1)), snapshot(['ok', 'connect-failed'], 2, 'b:2'));
  assert.deepEqual(sum.connections, { ok: 3, 'connect-failed': 1 });
  assert.deepEqual(sum.failures, { ERR_CONNECT_EXHAUSTED: 1 });
  assert.deepEqual(sum.attempts, { 'a:1': { ok: 2 }, 'b:2': { ok: 1, refused: 1 } });
  assert.equal(sum.bytesIn, 4);
  assert.equal(sum.activeConnections, 3);
  assert.deepEqual(sum.targetActive, { 'a:1': 1, 'b:2': 2 });
  assert.equal(sum.sessionDuration.counts.reduce((a, b) => a + b, 0), 4);
  assert.equal(sum.connectDuration.counts.reduce((a, b) => a + b, 0), 3);
  assert.deepEqual(sum.dns, { hit: 2, miss: 2, stale: 0, error: 0 });
  assert.equal(connectionsTotal(sum), 4);
});

test('a retired process brings its counters, not its gauges', () => {
  const retired = countersOnly(snapshot(['ok'], 5));
  assert.equal(retired.activeConnections, 0);
  assert.deepEqual(retired.targetActive, {});
  assert.deepEqual(retired.connections, { ok: 1 });
});

test('per-target states of two workers: one worker that ejected a target makes it ejected; targets of either kept', () => {
  const w1 = { ...emptySnapshot('web'), targets: [{ target: 'a:1', state: 'up' }, { target: 'b:2', state: 'up' }] };
  const w2 = { ...emptySnapshot('web'), targets: [{ target: 'a:1', state: 'up' }, { target: 'b:2', state: 'ejected' }, { target: 'c:3', state: 'unknown' }] };
  const byTarget = (s: ReturnType<typeof addSnapshots>) => Object.fromEntries((s.targets ?? []).map((r) => [r.target, r.state]));
  assert.deepEqual(byTarget(addSnapshots(w2, w1)), { 'a:1': 'up', 'b:2': 'ejected', 'c:3': 'unknown' });
  assert.deepEqual(byTarget(addSnapshots(w1, w2)), { 'a:1': 'up', 'b:2': 'ejected', 'c:3': 'unknown' });
  const down = { ...emptySnapshot('web'), targets: [{ target: 'b:2', state: 'down' }] };
  assert.equal(byTarget(addSnapshots(w2, down))['b:2'], 'down', 'the daemon\'s down wins over an ejection');
  assert.equal(addSnapshots(emptySnapshot('web'), emptySnapshot('web')).targets, undefined);
});

test('dropped log lines add up over processes, a retired one keeps its count, and a snapshot without the field counts 0', () => {
  const w1 = { ...emptySnapshot('web'), logLinesDropped: 3 };
  const w2 = { ...emptySnapshot('web'), logLinesDropped: 4 };
  const { logLinesDropped: _, ...older } = emptySnapshot('web');
  assert.equal(addSnapshots(addSnapshots(emptySnapshot('web'), w1), countersOnly(w2)).logLinesDropped, 7);
  assert.equal(addSnapshots(w1, older).logLinesDropped, 3);
  assert.equal(addSnapshots(older, older).logLinesDropped, 0);
});
