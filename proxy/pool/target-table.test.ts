import { test } from 'node:test';
import assert from 'node:assert/strict';
import { clock, target } from './pool.case.ts';
import { TargetTable } from './target-table.ts';

const OD = { consecutiveFailures: 3, ejectMs: 10_000, maxEjectMs: 300_000, maxEjectPercent: 100 };

test('a target in several pools has one state and appears once in the report', () => {
  const c = clock();
  const table = new TargetTable({ strategy: 'round-robin', outlierDetection: OD, now: c.now });
  const main = table.pool('default', [target('a:1'), target('b:1')]);
  const route = table.pool('x.test', [target('b:1', 3), target('c:1')]);
  assert.equal(main.entries[1]!.state, route.entries[0]!.state);
  assert.deepEqual(table.reports().map((r) => r.target), ['a:1', 'b:1', 'c:1']);
  assert.equal(route.entries[0]!.weight, 3);
});

test('reports: state, since, lastError and connections per target; ejection and its end change `since`', () => {
  const c = clock();
  const changed: string[] = [];
  const table = new TargetTable({ strategy: 'round-robin', outlierDetection: OD, now: c.now, onChange: (s) => changed.push(`${s.raw}:${s.state(c.t)}`) });
  const pool = table.pool('default', [target('a:1'), target('b:1')]);
  const t0 = c.t;
  const a = table.get('a:1')!;
  c.t += 500;
  for (let k = 0; k < 3; k++) {
    a.activeConnections++;
    pool.report(a, '10.0.0.1:1', 'refused', 'ECONNREFUSED');
  }
  assert.deepEqual(changed, ['a:1:ejected']);
  pool.pick(undefined, null); // b, counted
  assert.deepEqual(table.reports(), [
    { target: 'a:1', state: 'ejected', since: t0 + 500, lastError: 'ECONNREFUSED 10.0.0.1:1', activeConnections: 0 },
    { target: 'b:1', state: 'unknown', since: t0, lastError: null, activeConnections: 1 },
  ]);
  assert.equal(table.nextExpiry(), t0 + 10_500);
  c.t += 20_000;
  assert.deepEqual(table.reports()[0], { target: 'a:1', state: 'unknown', since: t0 + 10_500, lastError: 'ECONNREFUSED 10.0.0.1:1', activeConnections: 0 });
  assert.equal(table.nextExpiry(), undefined);
});

test('applyHealth: absent targets are unknown; returns the targets that just went down', () => {
  const c = clock();
  const table = new TargetTable({ strategy: 'first', outlierDetection: null, now: c.now });
  table.pool('default', [target('a:1'), target('b:1')]);
  assert.deepEqual(table.applyHealth({ 'a:1': 'down', 'b:1': 'up' }).map((s) => s.raw), ['a:1']);
  assert.deepEqual(table.applyHealth({ 'a:1': 'down', 'b:1': 'drain' }).map((s) => s.raw), [], 'already down; drain is not down');
  assert.deepEqual(table.reports().map((r) => r.state), ['down', 'drain']);
  table.applyHealth({ 'no-such:1': 'down' });
  assert.deepEqual(table.reports().map((r) => r.state), ['unknown', 'unknown']);
});
