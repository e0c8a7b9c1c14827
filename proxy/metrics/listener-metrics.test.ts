// ListenerMetrics: what one listener counts, as plain numbers, and the snapshot it sends the daemon.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { DURATION_BUCKETS, FixedHistogram } from './fixed-histogram.ts';
import { ListenerMetrics, attemptResult } from './listener-metrics.ts';

test('buckets run from 100 µs to one hour, ascending', () => {
  assert.equal(DURATION_BUCKETS[0], 0.0001);
  assert.equal(DURATION_BUCKETS.at(-1), 3600);
  for (let i = 1; i < DURATION_BUCKETS.length; i++) assert.ok(DURATION_BUCKETS[i]! > DURATION_BUCKETS[i - 1]!);
});

test('a histogram puts a value in the first bucket whose bound is >= it; above the last goes to +Inf', () => {
  const h = new FixedHistogram();
  h.observe(0.0001); // exactly the first bound: le="0.0001"
  h.observe(0.00011);
  h.observe(7200);
  const { counts, sum } = h.snapshot();
  assert.equal(counts.length, DURATION_BUCKETS.length + 1);
  assert.equal(counts[0], 1);
  assert.equal(counts[1], 1);
  assert.equal(counts.at(-1), 1);
  assert.equal(sum, 0.0001 + 0.00011 + 7200);
});

test('attempt results: ok, refused, timeout, dns, and everything else unreachable', () => {
  const coded = (code: string) => Object.assign(new Error(code), { code });
  assert.equal(attemptResult(null), 'ok');
  assert.equal(attemptResult(coded('ECONNREFUSED')), 'refused');
  assert.equal(attemptResult(coded('ETIMEDOUT')), 'timeout');
  assert.equal(attemptResult(coded('ERR_DNS_NOT_FOUND')), 'dns');
  assert.equal(attemptResult(coded('ERR_DNS_NO_ADDRESS')), 'dns');
  assert.equal(attemptResult(coded('EHOSTUNREACH')), 'unreachable');
  assert.equal(attemptResult(new Error('no code')), 'unreachable');
});

test('a snapshot counts closed sessions by outcome and reason, attempts by target, and is a copy', () => {
  const m = new ListenerMetrics('web');
  m.attempt('a:1', Object.assign(new Error(), { code: 'ECONNREFUSED' }));
  m.attempt('b:2', null);
  m.closed({ outcome: 'ok', code: undefined, bytesIn: 10, bytesOut: 20, durationS: 0.5, connectS: 0.001, handshakeS: -1 });
  m.closed({ outcome: 'no-route', code: 'ERR_NO_ROUTE', bytesIn: 5, bytesOut: 0, durationS: 0.01, connectS: -1, handshakeS: 0.002 });
  const live = { activeConnections: 3, targetActive: { 'b:2': 3 }, dns: { hit: 1, miss: 2, stale: 0, error: 0 } };
  const s = m.snapshot(live);
  assert.deepEqual(s.connections, { ok: 1, 'no-route': 1 });
  assert.deepEqual(s.failures, { ERR_NO_ROUTE: 1 });
  assert.deepEqual(s.attempts, { 'a:1': { refused: 1 }, 'b:2': { ok: 1 } });
  assert.equal(s.bytesIn, 15);
  assert.equal(s.bytesOut, 20);
  assert.equal(s.activeConnections, 3);
  const total = (c: readonly number[]) => c.reduce((a, b) => a + b, 0);
  assert.equal(total(s.sessionDuration.counts), 2);
  assert.equal(total(s.connectDuration.counts), 1, 'only sessions that reached a target');
  assert.equal(total(s.tlsHandshakeDuration.counts), 1, 'only sessions with a handshake');
  m.closed({ outcome: 'ok', code: undefined, bytesIn: 1, bytesOut: 1, durationS: 1, connectS: 0.001, handshakeS: -1 });
  assert.deepEqual(s.connections, { ok: 1, 'no-route': 1 }, 'an earlier snapshot does not change');
  assert.equal(total(s.sessionDuration.counts), 2);
});
