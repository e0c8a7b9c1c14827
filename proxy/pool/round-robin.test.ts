import { runPoolCases } from './pool.case.ts';

runPoolCases('round-robin', { weighted: true });
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { fixture, pickRaw, target } from './pool.case.ts';

test('round-robin: equal weights rotate in config order', () => {
  const f = fixture('round-robin', ['a:1', 'b:1', 'c:1']);
  assert.deepEqual(Array.from({ length: 6 }, () => pickRaw(f.pool)), ['a:1', 'b:1', 'c:1', 'a:1', 'b:1', 'c:1']);
});

test('round-robin: smooth weighted, as nginx: weights 5,1,1 give a a b a c a a', () => {
  const f = fixture('round-robin', [target('a:1', 5), target('b:1'), target('c:1')]);
  const seq = Array.from({ length: 14 }, () => pickRaw(f.pool)![0]).join('');
  assert.equal(seq, 'aabacaaaabacaa');
});

test('round-robin: a target back from an ejection rejoins the rotation without a burst', () => {
  const f = fixture('round-robin', ['a:1', 'b:1', 'c:1']);
  f.table.applyHealth({ 'a:1': 'down' });
  for (let k = 0; k < 100; k++) pickRaw(f.pool);
  f.table.applyHealth({});
  const next = Array.from({ length: 6 }, () => pickRaw(f.pool));
  assert.ok(next.filter((t) => t === 'a:1').length <= 2, next.join(' '));
});
