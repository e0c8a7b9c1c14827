import { test } from 'node:test';
import assert from 'node:assert/strict';
import { CidrList, cidrProblem } from './cidr-list.ts';

test('CidrList: deny wins, Allow present refuses the rest, IPv4-mapped IPv6 matches IPv4 ranges', () => {
  const cases: { allow: string[] | null; deny: string[]; addr: string; want: 'allow' | 'deny' }[] = [
    { allow: null, deny: [], addr: '1.2.3.4', want: 'allow' },
    { allow: null, deny: ['203.0.113.0/24'], addr: '203.0.113.9', want: 'deny' },
    { allow: null, deny: ['203.0.113.0/24'], addr: '203.0.114.9', want: 'allow' },
    { allow: null, deny: ['203.0.113.0/24'], addr: '::ffff:203.0.113.9', want: 'deny' },
    { allow: ['10.0.0.0/8'], deny: [], addr: '10.255.1.1', want: 'allow' },
    { allow: ['10.0.0.0/8'], deny: [], addr: '11.0.0.1', want: 'deny' },
    { allow: ['10.0.0.0/8'], deny: [], addr: '::ffff:10.1.2.3', want: 'allow' },
    { allow: ['10.0.0.0/8'], deny: ['10.1.0.0/16'], addr: '10.1.2.3', want: 'deny' },
    { allow: ['10.0.0.0/8'], deny: ['10.1.0.0/16'], addr: '10.2.2.3', want: 'allow' },
    { allow: ['::1/128'], deny: [], addr: '::1', want: 'allow' },
    { allow: ['::1/128'], deny: [], addr: '127.0.0.1', want: 'deny' },
    { allow: ['2001:db8::/32'], deny: [], addr: '2001:db8:ffff::1', want: 'allow' },
    { allow: ['2001:db8::/32'], deny: [], addr: '2001:db9::1', want: 'deny' },
    { allow: ['2001:db8::/32'], deny: ['2001:db8:dead::/48'], addr: '2001:db8:dead:1::5', want: 'deny' },
    // An IPv6 range never matches an IPv4 client, mapped or not.
    { allow: ['::/0'], deny: [], addr: '::ffff:1.2.3.4', want: 'deny' },
    { allow: ['0.0.0.0/0'], deny: [], addr: '::ffff:1.2.3.4', want: 'allow' },
    { allow: ['0.0.0.0/0'], deny: [], addr: '2001:db8::1', want: 'deny' },
    { allow: ['192.0.2.7'], deny: [], addr: '192.0.2.7', want: 'allow' },
    { allow: ['192.0.2.7'], deny: [], addr: '192.0.2.8', want: 'deny' },
    { allow: ['127.0.0.0/8'], deny: [], addr: '::ffff:7f00:1', want: 'allow' },
    { allow: [], deny: [], addr: '127.0.0.1', want: 'deny' },
    { allow: null, deny: [], addr: 'not-an-address', want: 'deny' },
  ];
  for (const c of cases) {
    assert.equal(new CidrList(c.allow, c.deny).verdict(c.addr), c.want, `${JSON.stringify(c)}`);
  }
});

test('cidrProblem names the bad value and the fix', () => {
  assert.equal(cidrProblem('10.0.0.0/8'), undefined);
  assert.equal(cidrProblem('::1/128'), undefined);
  assert.equal(cidrProblem('2001:db8::'), undefined);
  assert.match(cidrProblem('10.0.0.0/33')!, /bad prefix length "33".*0–32/);
  assert.match(cidrProblem('::/129')!, /0–128/);
  assert.match(cidrProblem('10.0.0.1/8')!, /bits set past its \/8 prefix.*"10.0.0.0\/8"/);
  assert.match(cidrProblem('10.0.0/8')!, /not an IPv4 or IPv6 address/);
  assert.match(cidrProblem('256.0.0.0/8')!, /not an IPv4/);
  assert.match(cidrProblem('1::2::3')!, /not an IPv4/);
  assert.match(cidrProblem('example.com')!, /not an IPv4/);
  assert.match(cidrProblem('')!, /not an IPv4/);
});
