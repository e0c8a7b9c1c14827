import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { initialHealth, nextHealth } from './target-health.ts';
import type { CheckedState, TargetHealth } from './target-health.ts';

const OK = { ok: true } as const;
const FAIL = { ok: false, error: 'ECONNREFUSED 127.0.0.1:9' } as const;

/** Feed a run of results ('+' success, '-' failure) from unknown; the state after each one. */
function run(results: string, rise: number, fall: number): CheckedState[] {
  let h: TargetHealth = initialHealth(0);
  return [...results].map((r, i) => (h = nextHealth(h, r === '+' ? OK : FAIL, rise, fall, i + 1)).state);
}

describe('nextHealth (Rise/Fall)', () => {
  const table: [string, string, number, number, string][] = [
    // name, results, rise, fall, states after each (u = unknown, U = up, D = down)
    ['unknown → up after Rise successes', '++', 2, 2, 'uU'],
    ['unknown → down after Fall failures', '--', 2, 2, 'uD'],
    ['Rise 1 and Fall 1 decide on the first probe', '+-+', 1, 1, 'UDU'],
    ['a failure resets the success run', '+-++', 2, 2, 'uuuU'],
    ['a success resets the failure run', '-+--', 2, 2, 'uuuD'],
    ['up → down only after Fall failures in a row', '++-+--', 2, 2, 'uUUUUD'],
    ['down → up only after Rise successes in a row', '--++', 2, 2, 'uDDU'],
    ['from unknown the first decision wins, whichever comes first', '-+++', 3, 3, 'uuuU'],
    ['Fall 3 tolerates two failures', '++--+---', 1, 3, 'UUUUUUUD'],
  ];
  const letter: Record<CheckedState, string> = { unknown: 'u', up: 'U', down: 'D' };
  for (const [name, results, rise, fall, expected] of table) {
    test(name, () => {
      assert.equal(run(results, rise, fall).map((s) => letter[s]).join(''), expected);
    });
  }

  test('since moves only with the state; lastError is the latest failure and clears when up', () => {
    let h = initialHealth(100);
    h = nextHealth(h, FAIL, 2, 2, 200);
    assert.deepEqual(h, { state: 'unknown', successes: 0, failures: 1, since: 100, lastError: FAIL.error });
    h = nextHealth(h, { ok: false, error: 'timed out after 5 ms' }, 2, 2, 300);
    assert.deepEqual(h, { state: 'down', successes: 0, failures: 2, since: 300, lastError: 'timed out after 5 ms' });
    h = nextHealth(h, FAIL, 2, 2, 400);
    assert.equal(h.since, 300, 'still down: since unchanged');
    h = nextHealth(h, OK, 2, 2, 500);
    assert.equal(h.state, 'down');
    assert.equal(h.lastError, FAIL.error, 'the last failure is kept while down');
    h = nextHealth(h, OK, 2, 2, 600);
    assert.deepEqual(h, { state: 'up', successes: 2, failures: 0, since: 600, lastError: null });
  });
});
