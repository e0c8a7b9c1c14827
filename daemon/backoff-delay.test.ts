import { test } from 'node:test';
import assert from 'node:assert/strict';
import { backoffDelay } from './backoff-delay.ts';

test('backoffDelay doubles from 100 ms and caps at 30 s', () => {
  const table: [attempt: number, ms: number][] = [
    [0, 100], [1, 200], [2, 400], [3, 800], [4, 1600], [5, 3200], [8, 25_600], [9, 30_000], [10, 30_000], [1000, 30_000],
  ];
  for (const [attempt, ms] of table) assert.equal(backoffDelay(attempt), ms, `attempt ${attempt}`);
});

test('backoffDelay treats negative or NaN attempts as the first one, Infinity as the cap', () => {
  for (const attempt of [-1, Number.NaN, Number.NEGATIVE_INFINITY]) assert.equal(backoffDelay(attempt), 100, String(attempt));
  assert.equal(backoffDelay(Number.POSITIVE_INFINITY), 30_000);
});

test('backoffDelay honours its options', () => {
  const table: [attempt: number, options: Parameters<typeof backoffDelay>[1], ms: number][] = [
    [0, { baseMs: 50 }, 50],
    [3, { baseMs: 50 }, 400],
    [3, { factor: 3 }, 2700],
    [5, { maxMs: 1000 }, 1000],
    [0, { baseMs: 500, maxMs: 200 }, 200],
  ];
  for (const [attempt, options, ms] of table) assert.equal(backoffDelay(attempt, options), ms, JSON.stringify({ attempt, options }));
});
