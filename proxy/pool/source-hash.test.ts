import { runPoolCases } from './pool.case.ts';

runPoolCases('source-hash', { weighted: true });
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { fixture, pickRaw } from './pool.case.ts';

const ten = Array.from({ length: 10 }, (_, k) => `10.9.0.${k + 1}:5432`);
const clients = Array.from({ length: 1000 }, (_, k) => `192.168.${k >> 8}.${k & 255}`);

test('source-hash: a client keeps its target across connections', () => {
  const f = fixture('source-hash', ten);
  const first = clients.map((c) => pickRaw(f.pool, c));
  for (let round = 0; round < 3; round++) assert.deepEqual(clients.map((c) => pickRaw(f.pool, c)), first);
  assert.equal(new Set(first).size, 10, 'all ten targets have clients');
});

test('source-hash: removing 1 of 10 targets moves only its clients (≤ 15 %), and they come back', () => {
  const f = fixture('source-hash', ten);
  const before = clients.map((c) => pickRaw(f.pool, c));
  const gone = ten[3]!;
  f.table.applyHealth({ [gone]: 'down' });
  const during = clients.map((c) => pickRaw(f.pool, c));
  const moved = during.filter((t, k) => t !== before[k]).length;
  assert.ok(moved / clients.length <= 0.15, `moved ${moved} of ${clients.length}`);
  assert.equal(during.filter((t, k) => t !== before[k] && before[k] !== gone).length, 0, 'only the gone target\'s clients move');
  f.table.applyHealth({});
  assert.deepEqual(clients.map((c) => pickRaw(f.pool, c)), before);
});

test('source-hash: a pool built without one of the targets (config change) moves ≤ 15 % of clients', () => {
  const all = fixture('source-hash', ten);
  const nine = fixture('source-hash', ten.filter((_, k) => k !== 6));
  const moved = clients.filter((c) => pickRaw(all.pool, c) !== pickRaw(nine.pool, c)).length;
  assert.ok(moved / clients.length <= 0.15, `moved ${moved} of ${clients.length}`);
});

test('source-hash: spreads clients evenly enough over equal targets', () => {
  const f = fixture('source-hash', ten);
  const counts = new Map<string, number>();
  for (const c of clients) {
    const t = pickRaw(f.pool, c)!;
    counts.set(t, (counts.get(t) ?? 0) + 1);
  }
  for (const [t, n] of counts) assert.ok(n > 50 && n < 170, `${t}: ${n} of 1000`);
});
