import { test } from 'node:test';
import assert from 'node:assert/strict';
import { TokenBucket } from './token-bucket.ts';

test('TokenBucket starts full, grants whole tokens in blocks, refills at rate up to burst', () => {
  let now = 1000;
  const b = new TokenBucket(20, 40, () => now);
  assert.equal(b.take(30), 30);
  assert.equal(b.take(30), 10, 'only what is left');
  assert.equal(b.take(1), 0, 'empty: rate-limited');
  now += 50; // 1 token at 20/s
  assert.equal(b.take(5), 1);
  now += 10_000;
  assert.equal(b.take(100), 40, 'refill stops at burst');
  assert.equal(b.full, false);
  now += 2000;
  assert.equal(b.full, true);
});

test('TokenBucket over time grants burst + rate × seconds, never more', () => {
  let now = 0;
  const b = new TokenBucket(20, 40, () => now);
  let got = 0;
  for (let ms = 0; ms <= 5000; ms += 7) {
    now = ms;
    got += b.take(3);
  }
  assert.ok(got <= 40 + 20 * 5 && got >= 40 + 20 * 5 - 1, `got ${got}`);
});
