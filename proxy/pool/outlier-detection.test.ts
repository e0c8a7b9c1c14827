// Passive health, as a table: a sequence of attempt results at given times → the state after each.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { targetSpec } from '../testing.ts';
import { OutlierDetection, type OutlierSpec } from './outlier-detection.ts';
import { TargetState, type AttemptResult } from './target-state.ts';

const SPEC: OutlierSpec = { consecutiveFailures: 3, ejectMs: 10_000, maxEjectMs: 30_000, maxEjectPercent: 100 };
const T0 = 1_700_000_000_000;

type Step = [atMs: number, result: AttemptResult | 'check', expect: 'up' | 'ejected', ejectedForMs?: number];

function run(steps: Step[], spec: OutlierSpec | null = SPEC): void {
  const od = new OutlierDetection(spec);
  const s = new TargetState(targetSpec('10.0.0.1:1'), T0);
  s.active = 'up';
  steps.forEach(([at, result, expect, ms], k) => {
    const now = T0 + at;
    if (result !== 'check') od.record(s, result, result === 'ok' ? null : 'ECONNREFUSED 10.0.0.1:1', now);
    const state = s.state(now) === 'ejected' ? 'ejected' : 'up';
    assert.equal(state, expect, `step ${k} (${result} at ${at} ms)`);
    if (ms !== undefined) assert.equal(s.ejectedUntil - now, ms, `step ${k}: ejected for`);
  });
}

const cases: [string, Step[], OutlierSpec | null][] = [
  ['three failures in a row eject for EjectMs', [[0, 'refused', 'up'], [1, 'timeout', 'up'], [2, 'unreachable', 'ejected', 10_000]], SPEC],
  ['a success resets the count', [[0, 'refused', 'up'], [1, 'refused', 'up'], [2, 'ok', 'up'], [3, 'refused', 'up'], [4, 'dns', 'up'], [5, 'refused', 'ejected']], SPEC],
  ['the ejection runs out: traffic again', [[0, 'refused', 'up'], [1, 'refused', 'up'], [2, 'refused', 'ejected'], [10_001, 'check', 'ejected'], [10_002, 'check', 'up'], [10_003, 'ok', 'up']], SPEC],
  ['on probation one failure ejects again, for twice as long, capped at MaxEjectMs', [
    [0, 'refused', 'up'], [1, 'refused', 'up'], [2, 'refused', 'ejected', 10_000],
    [10_002, 'timeout', 'ejected', 20_000],
    [30_002, 'timeout', 'ejected', 30_000],
    [60_002, 'timeout', 'ejected', 30_000],
  ], SPEC],
  ['one success after an ejection resets the doubling', [
    [0, 'refused', 'up'], [1, 'refused', 'up'], [2, 'refused', 'ejected', 10_000],
    [10_002, 'ok', 'up'],
    [10_003, 'refused', 'up'], [10_004, 'refused', 'up'], [10_005, 'refused', 'ejected', 10_000],
  ], SPEC],
  ['late failures while ejected neither extend nor double it', [
    [0, 'refused', 'up'], [1, 'refused', 'up'], [2, 'refused', 'ejected', 10_000], [5_002, 'timeout', 'ejected', 5_000],
  ], SPEC],
  ['a late success while ejected returns it at once', [[0, 'refused', 'up'], [1, 'refused', 'up'], [2, 'refused', 'ejected'], [3, 'ok', 'up']], SPEC],
  ['off (false): never ejects', [[0, 'refused', 'up'], [1, 'refused', 'up'], [2, 'refused', 'up'], [3, 'refused', 'up']], null],
];

for (const [name, steps, spec] of cases) test(name, () => run(steps, spec));

test('records the last error, even when off', () => {
  const od = new OutlierDetection(null);
  const s = new TargetState(targetSpec('10.0.0.1:1'), T0);
  od.record(s, 'timeout', 'ETIMEDOUT 10.0.0.1:1', T0);
  assert.equal(s.lastError, 'ETIMEDOUT 10.0.0.1:1');
});

test('MaxEjectPercent caps the share of a pool ejected at once (at least one)', () => {
  const od = new OutlierDetection({ ...SPEC, maxEjectPercent: 50 });
  const pool = ['a:1', 'b:1', 'c:1', 'd:1'].map((r) => new TargetState(targetSpec(r), T0));
  for (const s of pool) s.memberOf.push(pool);
  for (const s of pool) for (let k = 0; k < 3; k++) od.record(s, 'refused', 'ECONNREFUSED', T0);
  assert.deepEqual(pool.map((s) => s.ejected(T0)), [true, true, false, false]);
  const one = new OutlierDetection({ ...SPEC, maxEjectPercent: 10 });
  const pair = ['e:1', 'f:1'].map((r) => new TargetState(targetSpec(r), T0));
  for (const s of pair) s.memberOf.push(pair);
  for (const s of pair) for (let k = 0; k < 3; k++) one.record(s, 'refused', 'ECONNREFUSED', T0);
  assert.deepEqual(pair.map((s) => s.ejected(T0)), [true, false], '10 % of 2 still lets one go');
});

test('MaxEjectPercent 0 never ejects', () => {
  const od = new OutlierDetection({ ...SPEC, maxEjectPercent: 0 });
  const s = new TargetState(targetSpec('a:1'), T0);
  s.memberOf.push([s]);
  for (let k = 0; k < 5; k++) od.record(s, 'refused', 'ECONNREFUSED', T0);
  assert.equal(s.ejected(T0), false);
});
