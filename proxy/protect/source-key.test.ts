import { test } from 'node:test';
import assert from 'node:assert/strict';
import { sourceKey } from './source-key.ts';

test('sourceKey: IPv4 is the address, IPv6 the /Prefix6 network', () => {
  const cases: [string, number, string][] = [
    ['10.0.0.7', 64, '10.0.0.7'],
    ['::ffff:10.0.0.7', 64, '10.0.0.7'],
    ['::FFFF:10.0.0.7', 64, '10.0.0.7'],
    ['2001:db8:1:2:3:4:5:6', 64, '2001:db8:1:2::/64'],
    ['2001:db8:1:2::9', 64, '2001:db8:1:2::/64'],
    ['2001:db8:1:2ff::9', 56, '2001:db8:1:200::/56'],
    ['2001:db8::1', 128, '2001:db8::1'],
    ['::1', 64, '::/64'],
    ['2001:db8:1:2:3:4:5:6', 0, '::/0'],
  ];
  for (const [addr, p, want] of cases) assert.equal(sourceKey(addr, p), want, `${addr}/${p}`);
  assert.equal(sourceKey('2001:db8:1:2::1', 64), sourceKey('2001:db8:1:2:ffff::1', 64), 'one /64, one key');
});
