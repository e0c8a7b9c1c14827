import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import type { TargetReport } from '../../proxy/index.ts';
import type { ActiveTargetHealth } from './health-checker.ts';
import { targetStatus } from './target-status.ts';

const T0 = Date.parse('2026-01-01T00:00:00.000Z');

function active(state: ActiveTargetHealth['state'], checked = true, lastError: string | null = null, since = T0): ActiveTargetHealth {
  return { state, checked, lastError, since, successes: 0, failures: 0 };
}

function report(target: string, state: TargetReport['state'], activeConnections = 0, since = T0 + 5000, lastError: string | null = null): TargetReport {
  return { target, state, since, lastError, activeConnections };
}

describe('targetStatus merges active checks and the workers\' reports', () => {
  const table: [string, ActiveTargetHealth | undefined, TargetReport['state'][], string][] = [
    // name, daemon's active view of "a:1", each worker's report state for "a:1", expected /apps state
    ['down by active checks wins over everything', active('down'), ['ejected', 'up'], 'down'],
    ['ejected in any worker, checks up', active('up'), ['up', 'ejected'], 'ejected'],
    ['ejected with no checks', active('unknown', false), ['ejected'], 'ejected'],
    ['up by checks, not ejected', active('up'), ['up', 'up'], 'up'],
    ['unknown by checks (not decided yet), not ejected', active('unknown'), ['up'], 'unknown'],
    ['no checks, not ejected: up', active('unknown', false), ['up'], 'up'],
    ['no checks and listeners that send no reports (before the pool side): up', active('unknown', false), [], 'up'],
    ['checks up and listeners that send no reports: up', active('up'), [], 'up'],
  ];
  for (const [name, a, reports, expected] of table) {
    test(name, () => {
      const views = reports.map((state) => ({ targets: [report('a:1', state)], panic: false }));
      const { health } = targetStatus(['a:1'], () => a, views, T0);
      assert.equal(health[0]?.state, expected);
    });
  }

  test('one entry per target in order, connections summed over workers, panic from any worker', () => {
    const views = [
      { targets: [report('a:1', 'up', 2), report('b:2', 'up', 1)], panic: false },
      { targets: [report('a:1', 'up', 3), report('b:2', 'up', 0)], panic: true },
    ];
    const { health, panic } = targetStatus(['a:1', 'b:2', 'c:3'], () => active('up', true, null, T0 + 1000), views, T0);
    assert.deepEqual(health.map((h) => [h.target, h.activeConnections]), [['a:1', 5], ['b:2', 1], ['c:3', 0]]);
    assert.equal(panic, true);
  });

  test('since is ISO, from the state shown; lastError from the checks, else from a worker', () => {
    const down = targetStatus(['a:1'], () => active('down', true, 'ECONNREFUSED 127.0.0.1:1', T0 + 1000), [], T0).health[0];
    assert.deepEqual(down, { target: 'a:1', state: 'down', since: '2026-01-01T00:00:01.000Z', lastError: 'ECONNREFUSED 127.0.0.1:1', activeConnections: 0 });
    const ejected = targetStatus(['a:1'], () => active('up'), [{ targets: [report('a:1', 'ejected', 0, T0 + 7000, 'connect timeout')], panic: false }], T0).health[0];
    assert.deepEqual(ejected, { target: 'a:1', state: 'ejected', since: '2026-01-01T00:00:07.000Z', lastError: 'connect timeout', activeConnections: 0 });
  });

  test('without reports, panic is false', () => {
    assert.equal(targetStatus(['a:1'], () => undefined, [], T0).panic, false);
  });
});
