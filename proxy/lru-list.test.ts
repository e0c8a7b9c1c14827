// LruList: the tail is always the least recently used entry still in the list.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { LruList, type LruLinks } from './lru-list.ts';

interface Item extends LruLinks<Item> {
  readonly name: string;
}
const item = (name: string): Item => ({ name, newer: undefined, older: undefined });

/** Names from least to most recently used, by popping the tail. */
function drain(list: LruList<Item>): string[] {
  const out: string[] = [];
  for (let e = list.tail; e !== undefined; e = list.tail) {
    out.push(e.name);
    list.unlink(e);
  }
  return out;
}

test('pushHead, touch and unlink keep least-recently-used order at the tail', () => {
  const cases: [steps: string[], order: string[]][] = [
    [['+a', '+b', '+c'], ['a', 'b', 'c']],
    [['+a', '+b', '+c', '*a'], ['b', 'c', 'a']],
    [['+a', '+b', '+c', '*c'], ['a', 'b', 'c']],
    [['+a', '+b', '+c', '*b', '*a'], ['c', 'b', 'a']],
    [['+a', '+b', '+c', '-b'], ['a', 'c']],
    [['+a', '+b', '-a', '-b', '+c'], ['c']],
    [['+a'], ['a']],
  ];
  for (const [steps, order] of cases) {
    const list = new LruList<Item>();
    const items = new Map<string, Item>();
    for (const step of steps) {
      const name = step.slice(1);
      if (step[0] === '+') list.pushHead(items.set(name, item(name)).get(name)!);
      else if (step[0] === '*') list.touch(items.get(name)!);
      else list.unlink(items.get(name)!);
    }
    assert.deepEqual(drain(list), order, steps.join(' '));
  }
});

test('clear empties the list', () => {
  const list = new LruList<Item>();
  list.pushHead(item('a'));
  list.clear();
  assert.equal(list.tail, undefined);
});
