import { test } from 'node:test';
import assert from 'node:assert/strict';
import { RoundRobin } from './round-robin.ts';

test('picks items in order and wraps around', () => {
  const rr = new RoundRobin(['a', 'b', 'c']);
  assert.deepEqual(Array.from({ length: 7 }, () => rr.pick()), ['a', 'b', 'c', 'a', 'b', 'c', 'a']);
});

test('nextIndex walks the indexes the same way', () => {
  const rr = new RoundRobin([10, 20]);
  assert.deepEqual([rr.nextIndex(), rr.nextIndex(), rr.nextIndex()], [0, 1, 0]);
});

test('an empty pool yields undefined and -1', () => {
  const rr = new RoundRobin<string>([]);
  assert.equal(rr.pick(), undefined);
  assert.equal(rr.nextIndex(), -1);
});

test('a single item is always picked', () => {
  const rr = new RoundRobin(['only']);
  assert.deepEqual([rr.pick(), rr.pick(), rr.pick()], ['only', 'only', 'only']);
});
