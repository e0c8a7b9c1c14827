// DnsCache against a real DNS server: dns2 on 127.0.0.1 (port 0), queried through Node's c-ares
// resolver. Tests that need to move time use an injected clock; the server is always real.

import { test, type TestContext } from 'node:test';
import assert from 'node:assert/strict';
import { setTimeout as delay } from 'node:timers/promises';
import dns2 from 'dns2';
import { createResolver, DnsCache, DnsError, parseHosts, type Resolver } from './dns-cache.ts';
import { DNS_SERVERS_ENV, DnsServersError } from './resolver.ts';

const { Packet } = dns2;

interface ZoneRecord {
  a?: string[];
  aaaa?: string[];
  ttl?: number;
  /** Answer with this RCODE instead (e.g. 2 = SERVFAIL). */
  rcode?: number;
}

interface TestDns {
  zone: Map<string, ZoneRecord>;
  port: number;
  /** Questions received for name of type 'A' | 'AAAA'. */
  asked(name: string, type: 'A' | 'AAAA'): number;
  stop(): Promise<void>;
}

async function startDns(t: TestContext, records: Record<string, ZoneRecord>): Promise<TestDns> {
  const zone = new Map(Object.entries(records));
  const log = new Map<string, number>();
  const server = dns2.createServer({
    udp: true,
    handle: (request, send) => {
      const response = Packet.createResponseFromRequest(request);
      const question = request.questions[0];
      if (question === undefined) return void send(response);
      const name = question.name.toLowerCase();
      const type = question.type === Packet.TYPE.AAAA ? 'AAAA' : question.type === Packet.TYPE.A ? 'A' : 'other';
      log.set(`${name} ${type}`, (log.get(`${name} ${type}`) ?? 0) + 1);
      const record = zone.get(name);
      if (record === undefined) response.header.rcode = Packet.RCODE.NXDOMAIN;
      else if (record.rcode !== undefined) response.header.rcode = record.rcode;
      else {
        const addresses = (type === 'A' ? record.a : type === 'AAAA' ? record.aaaa : undefined) ?? [];
        for (const address of addresses) {
          const answer = { name: question.name, type: question.type, class: Packet.CLASS.IN, ttl: record.ttl ?? 60, address };
          response.answers.push(answer as unknown as (typeof response.answers)[number]);
        }
      }
      void send(response);
    },
  });
  const addresses = await server.listen({ udp: { port: 0, address: '127.0.0.1' } });
  const port = addresses.udp?.port;
  assert.ok(port, 'dns2 server reports its port');
  let stopped = false;
  const stop = async (): Promise<void> => {
    if (stopped) return;
    stopped = true;
    await server.close();
  };
  t.after(stop);
  return { zone, port, asked: (name, type) => log.get(`${name} ${type}`) ?? 0, stop };
}

/** A cache on the test server; `clock` set means time only moves when the test says so. */
function cacheOn(dns: TestDns, opts: ConstructorParameters<typeof DnsCache>[0] = {}): DnsCache {
  const cache = new DnsCache({ resolver: createResolver([`127.0.0.1:${dns.port}`]), ...opts });
  return cache;
}

function fakeClock(): { now: () => number; set(ms: number): void } {
  let ms = 0;
  return { now: () => ms, set: (to) => void (ms = to) };
}

/** A resolver that must not be asked. */
const noQueries: Resolver = {
  resolve4: (name) => assert.fail(`unexpected A query for ${name}`),
  resolve6: (name) => assert.fail(`unexpected AAAA query for ${name}`),
};

async function until(cond: () => boolean, what: string, ms = 20_000): Promise<void> {
  const deadline = performance.now() + ms;
  while (!cond()) {
    if (performance.now() > deadline) assert.fail(`timed out after ${ms} ms waiting for ${what}`);
    await delay(5);
  }
}

test('an IP literal is its own endpoint: no query, no entry', async () => {
  const cache = new DnsCache({ resolver: noQueries });
  assert.equal(cache.pick('10.0.0.7'), '10.0.0.7');
  assert.equal(cache.pick('2001:db8::7'), '2001:db8::7');
  assert.deepEqual(await cache.resolve('::1'), ['::1']);
  assert.deepEqual(await cache.warm(['127.0.0.1', '::1']), []);
  assert.deepEqual(cache.stats(), { queries: 0, hits: 0, staleServed: 0, entries: 0 });
});

test('an answer is served from the cache within its TTL: one query for 100 picks and resolves', async (t) => {
  const dns = await startDns(t, { 'cached.test': { a: ['192.0.2.1'], ttl: 2 } });
  const cache = cacheOn(dns);
  assert.equal(cache.pick('cached.test'), undefined, 'nothing cached before the first resolve');
  assert.deepEqual(await cache.resolve('cached.test'), ['192.0.2.1']);
  for (let i = 0; i < 100; i++) {
    assert.equal(cache.pick('cached.test'), '192.0.2.1');
    assert.deepEqual(await cache.resolve('cached.test'), ['192.0.2.1']);
  }
  assert.equal(dns.asked('cached.test', 'A'), 1);
  assert.equal(dns.asked('cached.test', 'AAAA'), 1, 'an empty AAAA answer is not retried');
  assert.equal(cache.stats().queries, 1);
  assert.equal(cache.stats().hits, 200);
});

test('200 concurrent resolves of one name share one query', async (t) => {
  const dns = await startDns(t, { 'busy.test': { a: ['192.0.2.5'], ttl: 30 } });
  const cache = cacheOn(dns);
  const answers = await Promise.all(Array.from({ length: 200 }, () => cache.resolve('busy.test')));
  for (const answer of answers) assert.deepEqual(answer, ['192.0.2.5']);
  assert.equal(dns.asked('busy.test', 'A'), 1);
  assert.equal(dns.asked('busy.test', 'AAAA'), 1);
  assert.equal(cache.stats().queries, 1);
});

test('a changed record is picked up after its TTL, not before', async (t) => {
  const dns = await startDns(t, { 'moving.test': { a: ['192.0.2.10'], ttl: 1 } });
  const cache = cacheOn(dns);
  const start = performance.now();
  assert.deepEqual(await cache.resolve('moving.test'), ['192.0.2.10']);
  dns.zone.set('moving.test', { a: ['192.0.2.20'], ttl: 1 });

  let seenAt = 0;
  await until(() => {
    const addr = cache.pick('moving.test');
    const at = performance.now();
    assert.ok(addr === '192.0.2.10' || addr === '192.0.2.20', `pick never misses (got ${addr})`);
    if (addr === '192.0.2.20') seenAt = at;
    return seenAt > 0;
  }, 'the new address');
  assert.ok(seenAt - start >= 1000, `new address seen ${Math.round(seenAt - start)} ms after the first query (TTL 1 s)`);
  // Within a refresh or so, not never: the bound only catches a cache that stopped refreshing.
  assert.ok(seenAt - start < 15_000, `new address seen after ${Math.round(seenAt - start)} ms`);
  assert.equal(dns.asked('moving.test', 'A'), 2);
});

test('one query per TTL window however many connections, and no pick misses while refreshing', async (t) => {
  const dns = await startDns(t, { 'steady.test': { a: ['192.0.2.30'], ttl: 1 } });
  const cache = cacheOn(dns);
  const start = performance.now();
  await cache.resolve('steady.test');
  let picks = 0;
  while (performance.now() - start < 2200) {
    for (let i = 0; i < 100; i++, picks++) assert.equal(cache.pick('steady.test'), '192.0.2.30');
    await new Promise(setImmediate);
  }
  const windows = Math.floor((performance.now() - start) / 1000);
  const queries = dns.asked('steady.test', 'A');
  assert.ok(picks > 1000, `made ${picks} picks`);
  assert.ok(queries >= 2 && queries <= windows + 1, `${queries} queries for ${picks} picks over ${windows} TTL windows`);
  assert.equal(cache.stats().queries, queries);
});

test('TTLs are clamped: a TTL-0 record is not queried per pick, a long one not kept past maxTtlMs', async (t) => {
  const dns = await startDns(t, { 'zero.test': { a: ['192.0.2.40'], ttl: 0 }, 'long.test': { a: ['192.0.2.41'], ttl: 86400 } });
  const clock = fakeClock();
  const cache = cacheOn(dns, { now: clock.now, minTtlMs: 1000, maxTtlMs: 5000 });
  await cache.resolve('zero.test');
  await cache.resolve('long.test');
  for (let i = 0; i < 100; i++) assert.equal(cache.pick('zero.test'), '192.0.2.40');
  clock.set(999);
  cache.pick('zero.test');
  assert.equal(cache.stats().queries, 2, 'TTL 0 still counts as minTtlMs');
  clock.set(1000);
  assert.equal(cache.pick('zero.test'), '192.0.2.40', 'the old answer is served while it refreshes');
  await until(() => dns.asked('zero.test', 'A') === 2, 'a refresh of zero.test at minTtlMs');

  clock.set(4999);
  cache.pick('long.test');
  assert.equal(dns.asked('long.test', 'A'), 1);
  clock.set(5000);
  cache.pick('long.test');
  await until(() => dns.asked('long.test', 'A') === 2, 'a refresh of long.test at maxTtlMs');
});

test('NXDOMAIN rejects with ERR_DNS_NOT_FOUND and is cached for negativeTtlMs', async (t) => {
  const dns = await startDns(t, {});
  const clock = fakeClock();
  const cache = cacheOn(dns, { now: clock.now, negativeTtlMs: 1000 });
  const notFound = (err: unknown): boolean => {
    assert.ok(err instanceof DnsError);
    assert.equal(err.code, 'ERR_DNS_NOT_FOUND');
    assert.equal(err.host, 'missing.test');
    assert.match(err.message, /"missing\.test"/);
    assert.equal((err.cause as { code?: string }).code, 'ENOTFOUND');
    return true;
  };
  await assert.rejects(cache.resolve('missing.test'), notFound);
  clock.set(999);
  await assert.rejects(cache.resolve('missing.test'), notFound);
  assert.equal(cache.pick('missing.test'), undefined);
  assert.equal(dns.asked('missing.test', 'A'), 1);
  assert.equal(cache.stats().queries, 1);

  dns.zone.set('missing.test', { a: ['192.0.2.50'] });
  clock.set(1000);
  assert.deepEqual(await cache.resolve('missing.test'), ['192.0.2.50'], 'asked again once negativeTtlMs has passed');
});

test('SERVFAIL with nothing cached rejects with ERR_DNS_FAILED naming the host', async (t) => {
  const dns = await startDns(t, { 'broken.test': { rcode: Packet.RCODE.SERVFAIL } });
  const errors: string[] = [];
  const cache = cacheOn(dns, { onError: (host, err) => errors.push(`${host} ${err.code}`) });
  await assert.rejects(cache.resolve('broken.test'), (err: unknown) => {
    assert.ok(err instanceof DnsError);
    assert.equal(err.code, 'ERR_DNS_FAILED');
    assert.match(err.message, /"broken\.test".*nameservers/);
    return true;
  });
  assert.deepEqual(errors, ['broken.test ERR_DNS_FAILED']);
});

test('a stopped DNS server still yields the stale answer (RFC 8767), asked at most once per negativeTtlMs', async (t) => {
  const dns = await startDns(t, { 'steadfast.test': { a: ['192.0.2.60', '192.0.2.61'], ttl: 1 } });
  const clock = fakeClock();
  const errors: DnsError[] = [];
  const cache = cacheOn(dns, { now: clock.now, negativeTtlMs: 1000, staleMaxMs: 10_000, onError: (_, err) => errors.push(err) });
  await cache.resolve('steadfast.test');
  await dns.stop();

  clock.set(1500);
  assert.match(cache.pick('steadfast.test') ?? '', /^192\.0\.2\.6[01]$/);
  await until(() => errors.length === 1, 'the failed background refresh');
  assert.equal(errors[0]?.code, 'ERR_DNS_FAILED');
  assert.equal((errors[0]?.cause as { code?: string }).code, 'ECONNREFUSED');
  for (let i = 0; i < 10; i++) assert.match(cache.pick('steadfast.test') ?? '', /^192\.0\.2\.6[01]$/);
  assert.deepEqual(await cache.resolve('steadfast.test'), ['192.0.2.60', '192.0.2.61']);
  assert.equal(cache.stats().queries, 2, 'no new query within negativeTtlMs of the failure');
  assert.ok(cache.stats().staleServed >= 12, `staleServed = ${cache.stats().staleServed}`);

  clock.set(2600);
  assert.deepEqual(await cache.resolve('steadfast.test'), ['192.0.2.60', '192.0.2.61'], 'retried, failed, still stale');
  assert.equal(cache.stats().queries, 3);

  clock.set(11_001); // past TTL + staleMaxMs: nothing left to serve
  assert.equal(cache.pick('steadfast.test'), undefined);
  await assert.rejects(cache.resolve('steadfast.test'), { code: 'ERR_DNS_FAILED', host: 'steadfast.test' });
});

test('NXDOMAIN on refresh is an answer, not an outage: the old addresses are dropped', async (t) => {
  const dns = await startDns(t, { 'retired.test': { a: ['192.0.2.65'], ttl: 1 } });
  const clock = fakeClock();
  const cache = cacheOn(dns, { now: clock.now });
  await cache.resolve('retired.test');
  dns.zone.delete('retired.test');
  clock.set(1000);
  assert.equal(cache.pick('retired.test'), '192.0.2.65', 'served while the refresh runs');
  await until(() => cache.pick('retired.test') === undefined, 'the NXDOMAIN to replace the answer');
  await assert.rejects(cache.resolve('retired.test'), { code: 'ERR_DNS_NOT_FOUND' });
});

test('picks rotate through every address, IPv4 first then IPv6', async (t) => {
  const dns = await startDns(t, {
    'pool.test': { a: ['192.0.2.1', '192.0.2.2', '192.0.2.3'], aaaa: ['2001:db8::1'] },
    'six.test': { aaaa: ['2001:db8::6'] },
  });
  const cache = cacheOn(dns);
  const all = await cache.resolve('pool.test');
  assert.deepEqual(all, ['192.0.2.1', '192.0.2.2', '192.0.2.3', '2001:db8::1']);
  const picks = Array.from({ length: 8 }, () => cache.pick('pool.test') ?? '');
  for (let i = 1; i < picks.length; i++) {
    assert.equal(picks[i], all[(all.indexOf(picks[i - 1] ?? '') + 1) % all.length], `pick ${i} follows pick ${i - 1}`);
  }
  for (const addr of all) assert.equal(picks.filter((p) => p === addr).length, 2, `${addr} picked twice in 8`);
  assert.deepEqual(await cache.resolve('six.test'), ['2001:db8::6'], 'an empty A answer is fine when AAAA answers');
});

test('the cache holds at most maxEntries names, evicting the least recently used', async (t) => {
  const dns = await startDns(t, { 'a.test': { a: ['192.0.2.71'] }, 'b.test': { a: ['192.0.2.72'] }, 'c.test': { a: ['192.0.2.73'] } });
  const cache = cacheOn(dns, { maxEntries: 2 });
  await cache.resolve('a.test');
  await cache.resolve('b.test');
  await cache.resolve('c.test');
  assert.equal(cache.stats().entries, 2);
  assert.equal(cache.pick('a.test'), undefined, 'the oldest name was evicted');
  assert.equal(cache.pick('b.test'), '192.0.2.72');
  assert.equal(cache.pick('c.test'), '192.0.2.73');

  cache.pick('b.test'); // b is now more recently used than c
  await cache.resolve('a.test');
  assert.equal(cache.pick('c.test'), undefined);
  assert.equal(cache.pick('b.test'), '192.0.2.72');
  assert.equal(cache.pick('a.test'), '192.0.2.71');
});

test('localhost resolves through dns.lookup, never the DNS resolver', async () => {
  const cache = new DnsCache({ resolver: noQueries });
  const addrs = await cache.resolve('localhost');
  assert.ok(addrs.includes('127.0.0.1') || addrs.includes('::1'), `localhost -> ${addrs.join(', ')}`);
  assert.ok(addrs.includes(cache.pick('localhost') ?? ''));
  assert.equal(cache.stats().queries, 1);
});

test('warm resolves every name, never rejects, and returns the failures', async (t) => {
  const dns = await startDns(t, { 'up.test': { a: ['192.0.2.80'] } });
  const cache = cacheOn(dns);
  const failures = await cache.warm(['up.test', 'down.test', 'up.test', '10.0.0.1']);
  assert.deepEqual(failures.map((f) => [f.host, (f.error as DnsError).code]), [['down.test', 'ERR_DNS_NOT_FOUND']]);
  assert.equal(cache.pick('up.test'), '192.0.2.80');
  assert.equal(dns.asked('up.test', 'A'), 1);
});

test('createResolver uses FPROXY_DNS_SERVERS when no servers are given, and rejects bad ones', async (t) => {
  const dns = await startDns(t, { 'env.test': { a: ['192.0.2.90'] } });
  const saved = process.env[DNS_SERVERS_ENV];
  t.after(() => {
    if (saved === undefined) delete process.env[DNS_SERVERS_ENV];
    else process.env[DNS_SERVERS_ENV] = saved;
  });
  process.env[DNS_SERVERS_ENV] = ` 127.0.0.1:${dns.port} ,`;
  const cache = new DnsCache({ resolver: createResolver() });
  assert.deepEqual(await cache.resolve('env.test'), ['192.0.2.90']);
  assert.equal(dns.asked('env.test', 'A'), 1);

  process.env[DNS_SERVERS_ENV] = 'not-an-ip';
  assert.throws(() => createResolver(), (err: unknown) => {
    assert.ok(err instanceof DnsServersError);
    assert.equal(err.code, 'ERR_DNS_SERVERS_INVALID');
    assert.match(err.message, /not-an-ip.*FPROXY_DNS_SERVERS/);
    return true;
  });
});

test('parseHosts lists the names of a hosts file', () => {
  const names = parseHosts('127.0.0.1 localhost\n# 10.0.0.9 commented.out\n10.0.0.2\tDB.Internal db  # primary\n::1 ip6-localhost\nbad-line here\n');
  assert.deepEqual([...names].sort(), ['db', 'db.internal', 'ip6-localhost', 'localhost']);
});
