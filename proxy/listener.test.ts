// The listener, end to end on loopback: real echo targets, real client sockets.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import net from 'node:net';
import { once } from 'node:events';
import { randomBytes, createHash } from 'node:crypto';
import { Listener } from './listener.ts';
import { createLogger } from './log.ts';
import { closedPort, closedPorts, exchange, listen, makeSpec, startBlackhole, startEcho, waitFor } from './testing.ts';

const logger = createLogger({ proc: 'test' }, 'silent');

test('rotates over the targets in exact round-robin order, shared across the app\'s ports', async (t) => {
  const targets = await Promise.all(['a', 'b', 'c'].map((tag) => startEcho(tag)));
  t.after(() => Promise.all(targets.map((e) => e.close())));
  const { ports } = await listen(t, makeSpec(targets.map((e) => `127.0.0.1:${e.port}`), { ports: [0, 0] }));
  assert.equal(ports.length, 2);
  const tags: string[] = [];
  for (let i = 0; i < 9; i++) {
    const r = await exchange(ports[i % 2]!, 'x');
    tags.push(r.reply.split(':')[0]!);
  }
  assert.deepEqual(tags, ['a', 'b', 'c', 'a', 'b', 'c', 'a', 'b', 'c']);
});

test('fails over to the next target when one refuses, and the client sees no error', async (t) => {
  const dead = await closedPort(t);
  const live = await startEcho('live');
  t.after(() => live.close());
  const { listener, ports } = await listen(t, makeSpec([`127.0.0.1:${dead}`, `127.0.0.1:${live.port}`]));
  for (let i = 0; i < 6; i++) {
    const r = await exchange(ports[0]!, `m${i}`);
    assert.equal(r.error, undefined);
    assert.equal(r.reply, `live:m${i}`);
  }
  assert.equal(listener.counters().failedConnections, 0);
});

test('resets the client once every target refused, without waiting for ConnectTimeoutMs', async (t) => {
  const dead = await closedPorts(t, 2);
  // A budget far beyond the client's patience: a reset the client sees came from the refusals, not the budget.
  const { listener, ports } = await listen(t, makeSpec(dead.map((p) => `127.0.0.1:${p}`), { connectTimeoutMs: 120_000 }));
  const r = await exchange(ports[0]!, 'hello', '127.0.0.1', 30_000);
  assert.equal(r.error?.code, 'ECONNRESET');
  await waitFor(() => listener.counters().failedConnections === 1, 20_000, 'failed counter');
});

test('a target that never answers the SYN costs the attempt timeout, then the next target serves', async (t) => {
  // A listener that never accepts, with its one-slot queue full, drops further SYNs: the connect
  // hangs as for a blackholed host, while staying on loopback.
  const live = await startEcho('live');
  t.after(() => live.close());
  const { port: stuckPort, stop } = await startBlackhole();
  t.after(stop);
  const { ports } = await listen(t, makeSpec([`127.0.0.1:${stuckPort}`, `127.0.0.1:${live.port}`], { connectAttemptTimeoutMs: 300 }));
  const r = await exchange(ports[0]!, 'hi');
  assert.equal(r.error, undefined);
  assert.equal(r.reply, 'live:hi');
  assert.ok(r.ms >= 250, `the stuck attempt should have cost its timeout, took ${r.ms} ms`);
});

test('honours half-close: a client that ends its write side still receives the whole response', async (t) => {
  // The target answers only after the client's FIN, then sends 64 KiB and ends.
  const big = randomBytes(64 * 1024);
  const server = net.createServer({ allowHalfOpen: true }, (s) => {
    s.on('data', () => {});
    s.on('end', () => s.end(big));
  });
  server.listen(0, '127.0.0.1');
  await once(server, 'listening');
  t.after(() => server.close());
  const { ports } = await listen(t, makeSpec([`127.0.0.1:${(server.address() as net.AddressInfo).port}`]));
  const c = net.connect({ port: ports[0]!, host: '127.0.0.1', allowHalfOpen: true });
  const chunks: Buffer[] = [];
  c.on('data', (d) => chunks.push(d));
  await once(c, 'connect');
  c.end('request');
  await once(c, 'end');
  c.destroy();
  assert.ok(Buffer.concat(chunks).equals(big));
});

test('forwards 10 MiB both ways byte for byte', async (t) => {
  const echo = await startEcho();
  t.after(() => echo.close());
  const { listener, ports } = await listen(t, makeSpec([`127.0.0.1:${echo.port}`]));
  const payload = randomBytes(10 * 1024 * 1024);
  const c = net.connect({ port: ports[0]!, host: '127.0.0.1', allowHalfOpen: true });
  const hash = createHash('sha256');
  let received = 0;
  c.on('data', (d: Buffer) => {
    hash.update(d);
    received += d.length;
  });
  await once(c, 'connect');
  c.end(payload);
  await once(c, 'end');
  c.destroy();
  assert.equal(received, payload.length);
  assert.equal(hash.digest('hex'), createHash('sha256').update(payload).digest('hex'));
  await waitFor(() => listener.counters().activeConnections === 0, 20_000, 'session closed');
  assert.equal(listener.counters().bytesIn, payload.length);
  assert.equal(listener.counters().bytesOut, payload.length);
});

test('accepts IPv6 clients on the same dual-stack port', async (t) => {
  const echo = await startEcho('v6');
  t.after(() => echo.close());
  const { ports } = await listen(t, makeSpec([`127.0.0.1:${echo.port}`]));
  const r = await exchange(ports[0]!, 'hi', '::1');
  assert.equal(r.error, undefined);
  assert.equal(r.reply, 'v6:hi');
});

test('reaches an IPv6 target written as [::1]:port', async (t) => {
  const echo = await startEcho('six', '::1');
  t.after(() => echo.close());
  const { ports } = await listen(t, makeSpec([`[::1]:${echo.port}`]));
  assert.equal((await exchange(ports[0]!, 'x')).reply, 'six:x');
});

test('closes a connection after IdleTimeoutMs without bytes either way', async (t) => {
  const echo = await startEcho();
  t.after(() => echo.close());
  const { listener, ports } = await listen(t, makeSpec([`127.0.0.1:${echo.port}`], { idleTimeoutMs: 300 }));
  const c = net.connect(ports[0]!, '127.0.0.1');
  c.on('error', () => {});
  await once(c, 'connect');
  // Taken before the last bytes are sent: the session's last activity comes after it.
  const t0 = Date.now();
  c.write('ping');
  await once(c, 'data');
  await once(c, 'close');
  const idle = Date.now() - t0;
  // Not before the idle timeout; the upper side only bounds a hang (the test's own timeout would too).
  assert.ok(idle >= 250 && idle < 30_000, `closed after ${idle} ms`);
  await waitFor(() => listener.counters().activeConnections === 0, 20_000, 'session closed');
});

test('drain stops accepting, lets open connections finish, and closes the rest at the timeout', async (t) => {
  const echo = await startEcho();
  t.after(() => echo.close());
  const listener = new Listener(makeSpec([`127.0.0.1:${echo.port}`]), { logger });
  const [port] = await listener.start();
  const open = net.connect(port!, '127.0.0.1');
  open.on('error', () => {});
  await once(open, 'connect');
  open.write('a');
  await once(open, 'data');
  const drained = listener.drain(400);
  const refused = await exchange(port!, 'late');
  assert.equal(refused.error?.code, 'ECONNREFUSED');
  open.write('still here');
  const [d] = await once(open, 'data');
  assert.equal(String(d), 'still here');
  assert.deepEqual(await drained, { closedByTimeout: 1 });
});

test('a port held by another program is a clear ERR_BIND, and nothing stays bound', async (t) => {
  const holder = net.createServer().listen(0, '::');
  await once(holder, 'listening');
  t.after(() => holder.close());
  const held = (holder.address() as net.AddressInfo).port;
  const listener = new Listener(makeSpec(['127.0.0.1:1'], { ports: [0, held] }), { logger });
  await assert.rejects(listener.start(), (err: Error & { code: string; port: number }) => {
    assert.equal(err.code, 'ERR_BIND');
    assert.equal(err.port, held);
    assert.match(err.message, new RegExp(`cannot bind port ${held}: EADDRINUSE`));
    return true;
  });
});

test('resolves a hostname target (localhost goes through the hosts-file lookup)', async (t) => {
  const echo = await startEcho('named');
  t.after(() => echo.close());
  const { ports } = await listen(t, makeSpec([`localhost:${echo.port}`]));
  // localhost may resolve to ::1 first; the echo listens on 127.0.0.1 only, so this also proves
  // that a refused address moves on to the next one.
  for (let i = 0; i < 3; i++) assert.equal((await exchange(ports[0]!, `n${i}`)).reply, `named:n${i}`);
});

test('client sockets get TCP keepalive from the listening socket (no per-connection setsockopt)', async (t) => {
  const { execFileSync } = await import('node:child_process');
  const echo = await startEcho();
  t.after(() => echo.close());
  const { ports } = await listen(t, makeSpec([`127.0.0.1:${echo.port}`]));
  const c = net.connect(ports[0]!, '127.0.0.1');
  t.after(() => c.destroy());
  await once(c, 'connect');
  c.write('x');
  await once(c, 'data');
  const ss = execFileSync('ss', ['-tno', 'state', 'established', `( sport = :${ports[0]} )`], { encoding: 'utf8' });
  assert.match(ss, /timer:\(keepalive,/, ss);
});

test('a target that sends a large response and closes at once: a slow client still gets every byte', async (t) => {
  const payload = randomBytes(24 * 1024 * 1024);
  const server = net.createServer({ allowHalfOpen: true }, (s) => {
    s.on('error', () => {});
    s.end(payload);
    s.resume();
  });
  server.listen(0, '127.0.0.1');
  await once(server, 'listening');
  t.after(() => server.close());
  const { listener, ports } = await listen(t, makeSpec([`127.0.0.1:${(server.address() as net.AddressInfo).port}`]));
  const c = net.connect({ port: ports[0]!, host: '127.0.0.1', allowHalfOpen: true });
  c.on('error', () => {});
  await once(c, 'connect');
  c.pause();
  c.end('request'); // half-close first, as a request/response client does
  // The client reads nothing until its own buffer is full (Node then stops reading from the
  // kernel), so the bytes back up all the way to the target while it has already ended.
  await waitFor(() => listener.counters().activeConnections === 1 && c.readableLength >= c.readableHighWaterMark, 20_000, 'the client buffer full');
  let received = 0;
  const hash = createHash('sha256');
  // A slow reader keeps every buffer on the way full, so the proxy still holds bytes of its own
  // when the target's FIN arrives.
  c.on('data', (d: Buffer) => {
    received += d.length;
    hash.update(d);
    c.pause();
    setTimeout(() => c.resume(), 1);
  });
  c.resume();
  await Promise.race([once(c, 'end'), once(c, 'close')]);
  assert.equal(received, payload.length);
  assert.equal(hash.digest('hex'), createHash('sha256').update(payload).digest('hex'));
  await waitFor(() => listener.counters().activeConnections === 0, 20_000, 'session closed');
});
