import { runPoolCases } from './pool.case.ts';

runPoolCases('least-connections', { weighted: true });
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { fixture, target } from './pool.case.ts';

test('least-connections: picks the target with the fewest open connections per unit of weight', () => {
  const f = fixture('least-connections', [target('a:1', 2), target('b:1'), target('c:1')]);
  const held = Array.from({ length: 8 }, () => f.pool.entries[f.pool.pick(undefined, null)]!.state.raw);
  const count = (t: string) => held.filter((h) => h === t).length;
  assert.deepEqual([count('a:1'), count('b:1'), count('c:1')], [4, 2, 2]);
  // Close two of b's: it has the fewest now.
  const b = f.table.get('b:1')!;
  f.pool.release(b);
  f.pool.release(b);
  assert.equal(f.pool.entries[f.pool.pick(undefined, null)]!.state.raw, 'b:1');
});

test('least-connections: equal targets share a burst (ties rotate)', () => {
  const f = fixture('least-connections', ['a:1', 'b:1', 'c:1']);
  const seq: string[] = [];
  for (let k = 0; k < 6; k++) {
    const i = f.pool.pick(undefined, null);
    seq.push(f.pool.entries[i]!.state.raw);
    f.pool.release(f.pool.entries[i]!.state);
  }
  assert.deepEqual(seq, ['a:1', 'b:1', 'c:1', 'a:1', 'b:1', 'c:1']);
});
