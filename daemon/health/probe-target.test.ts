// probeTarget against real loopback peers: TCP connect, Send/Expect, HTTP status, timeouts, DNS.
import assert from 'node:assert/strict';
import { once } from 'node:events';
import net from 'node:net';
import { describe, test } from 'node:test';
import { probeTarget } from './probe-target.ts';
import type { ProbeOptions } from './probe-target.ts';
import { hostResolver } from './resolve-host.ts';
import { startBlackhole, startCountingTcp, startDns, startHealthEndpoint } from './testing-health.ts';

const TCP: ProbeOptions = { timeoutMs: 2000, send: null, expect: null, httpPath: null, expectStatus: [] };

/** A port with nothing listening: bound, read, closed (only ever connected to, never bound again). */
async function refusedPort(): Promise<number> {
  const s = net.createServer().listen(0, '127.0.0.1');
  await once(s, 'listening');
  const port = (s.address() as net.AddressInfo).port;
  await new Promise<void>((r) => s.close(() => r()));
  return port;
}

describe('probeTarget: TCP', () => {
  test('is healthy when the connection is accepted', async (t) => {
    const target = await startCountingTcp(t);
    assert.deepEqual(await probeTarget('127.0.0.1', target.port, TCP), { ok: true });
    assert.equal(target.accepted, 1);
  });

  test('fails with the connect error and the address', async () => {
    const port = await refusedPort();
    assert.deepEqual(await probeTarget('127.0.0.1', port, TCP), { ok: false, error: `ECONNREFUSED 127.0.0.1:${port}` });
  });

  test('fails after TimeoutMs when SYNs go unanswered', async (t) => {
    const port = await startBlackhole(t);
    assert.deepEqual(await probeTarget('127.0.0.1', port, { ...TCP, timeoutMs: 300 }), { ok: false, error: 'timed out after 300 ms' });
  });
});

describe('probeTarget: Send/Expect', () => {
  const pingPong = (d: string): string | undefined => (d.includes('PING\r\n') ? '+PONG\r\n' : '-ERR unknown\r\n');

  test('is healthy when the reply contains Expect', async (t) => {
    const target = await startCountingTcp(t, { reply: pingPong });
    assert.deepEqual(await probeTarget('127.0.0.1', target.port, { ...TCP, send: 'PING\r\n', expect: 'PONG' }), { ok: true });
  });

  test('fails when the reply does not contain Expect (the peer keeps the connection open: at TimeoutMs)', async (t) => {
    const target = await startCountingTcp(t, { reply: pingPong });
    assert.deepEqual(await probeTarget('127.0.0.1', target.port, { ...TCP, timeoutMs: 300, send: 'PONG\r\n', expect: 'PONG' }), { ok: false, error: 'timed out after 300 ms' });
  });

  test('fails as soon as the peer closes without Expect', async (t) => {
    const target = await startCountingTcp(t, { greeting: '-ERR\r\n', end: true });
    assert.deepEqual(await probeTarget('127.0.0.1', target.port, { ...TCP, send: 'PING\r\n', expect: 'PONG' }), { ok: false, error: 'reply did not contain "PONG" (got "-ERR\\r\\n")' });
  });

  test('a silent peer times out', async (t) => {
    const target = await startCountingTcp(t);
    assert.deepEqual(await probeTarget('127.0.0.1', target.port, { ...TCP, timeoutMs: 300, send: 'PING\r\n', expect: 'PONG' }), { ok: false, error: 'timed out after 300 ms' });
  });

  test('Expect without Send reads the banner', async (t) => {
    const target = await startCountingTcp(t, { greeting: '220 ready\r\n' });
    assert.deepEqual(await probeTarget('127.0.0.1', target.port, { ...TCP, expect: '220 ' }), { ok: true });
  });
});

describe('probeTarget: HTTP', () => {
  test('sends GET <path> with Host and Connection: close; healthy on ExpectStatus', async (t) => {
    const endpoint = await startHealthEndpoint(t, '127.0.0.2', '/primary', 200);
    assert.deepEqual(await probeTarget('127.0.0.2', endpoint.port, { ...TCP, httpPath: '/primary', expectStatus: [200] }), { ok: true });
    assert.deepEqual(endpoint.requests, [`GET /primary 127.0.0.2:${endpoint.port} close`]);
  });

  test('fails on another status, naming it', async (t) => {
    const endpoint = await startHealthEndpoint(t, '127.0.0.3', '/primary', 503);
    assert.deepEqual(await probeTarget('127.0.0.3', endpoint.port, { ...TCP, httpPath: '/primary', expectStatus: [200] }), { ok: false, error: 'HTTP 503 from /primary (expected 200)' });
  });

  test('without ExpectStatus any 2xx is healthy and 3xx is not', async (t) => {
    const endpoint = await startHealthEndpoint(t, '127.0.0.1', '/health', 204);
    const options = { ...TCP, httpPath: '/health' };
    assert.deepEqual(await probeTarget('127.0.0.1', endpoint.port, options), { ok: true });
    endpoint.status = 301;
    assert.deepEqual(await probeTarget('127.0.0.1', endpoint.port, options), { ok: false, error: 'HTTP 301 from /health (expected 2xx)' });
  });

  test('a peer that is not HTTP fails', async (t) => {
    const target = await startCountingTcp(t, { reply: () => 'SSH-2.0-OpenSSH\r\n' });
    const result = await probeTarget('127.0.0.1', target.port, { ...TCP, httpPath: '/' });
    assert.deepEqual(result, { ok: false, error: 'not an HTTP reply from /: "SSH-2.0-OpenSSH"' });
  });
});

describe('probeTarget: names', () => {
  test('a name is resolved (here by a real DNS server) and probed at its address', async (t) => {
    const target = await startCountingTcp(t);
    const dns = await startDns(t, { 'db.test': '127.0.0.1' });
    const resolve = hostResolver({ FPROXY_DNS_SERVERS: dns });
    assert.deepEqual(await probeTarget('db.test', target.port, TCP, resolve), { ok: true });
    assert.equal(target.accepted, 1);
  });

  test('a name that does not resolve is a failed probe', async (t) => {
    const dns = await startDns(t, {});
    const result = await probeTarget('gone.test', 1, TCP, hostResolver({ FPROXY_DNS_SERVERS: dns }));
    assert.equal(result.ok, false);
    assert.match(result.ok ? '' : result.error, /^cannot resolve "gone\.test": .*ENOTFOUND/);
  });

  test('localhost resolves through the OS (dns.lookup) without FPROXY_DNS_SERVERS', async (t) => {
    const target = await startCountingTcp(t);
    assert.deepEqual(await probeTarget('localhost', target.port, TCP, hostResolver({})), { ok: true });
  });
});
