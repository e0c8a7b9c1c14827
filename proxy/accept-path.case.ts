// The accept path's conformance suite: the same policy behaviours, end to end on loopback, whichever
// engine owns the sockets. On the js engine Node accepts and connects (Session); on the native
// engine a plain TCP app is accepted, connected and forwarded in C while TypeScript decides each
// connection (NativeSession). Run by accept-path-js.test.ts and accept-path-native.test.ts.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import net from 'node:net';
import type { Engine } from './engine/engine.ts';
import type { Listener } from './listener.ts';
import { connectFrom, type Held } from './protect/protect-testing.ts';
import type { ListenerSpec } from './spec.ts';
import { readFileSync } from 'node:fs';
import { closedPorts, exchange, listen, makeSpec, slowClient, startEcho, targetSpec, waitFor } from './testing.ts';

/** A ClientHello from `openssl s_client -servername a.example.test -alpn h2,http/1.1`. */
const HELLO = readFileSync(new URL('./tls/fixtures/openssl-sni-alpn.bin', import.meta.url));

/** Connect, write `parts` one after another (`pauseMs` between), half-close, collect the reply. Never rejects. */
function sendParts(port: number, parts: Buffer[], pauseMs = 20): Promise<{ reply: Buffer; error?: string }> {
  return new Promise((resolve) => {
    const chunks: Buffer[] = [];
    const s = net.connect({ port, host: '127.0.0.1', allowHalfOpen: true, noDelay: true });
    s.setTimeout(20_000, () => s.destroy(Object.assign(new Error('timeout'), { code: 'ETIMEDOUT' })));
    s.on('data', (d: Buffer) => chunks.push(d));
    s.on('error', (err: NodeJS.ErrnoException) => resolve({ reply: Buffer.concat(chunks), error: err.code ?? 'ERR' }));
    s.on('end', () => {
      s.destroy();
      resolve({ reply: Buffer.concat(chunks) });
    });
    s.on('connect', async () => {
      for (const [i, part] of parts.entries()) {
        if (i > 0) await new Promise((r) => setTimeout(r, pauseMs));
        s.write(part);
      }
      s.end();
    });
  });
}

type T = { after: (fn: () => unknown) => void };

/** `expectNative`: whether a plain TCP app on this engine is accepted without a Node socket. */
/** A PROXY v1 header from `src` (to 10.9.9.9:80). */
const proxyV1 = (src: string) => Buffer.from(`PROXY TCP4 ${src} 10.9.9.9 1111 80\r\n`);

/** A client that takes the app's only MaxConnections slot (its header and a first exchange) until the test ends it. */
async function holdSlot(t: { after: (fn: () => unknown) => void }, port: number): Promise<net.Socket> {
  const first = net.connect({ port, host: '127.0.0.1' });
  t.after(() => first.destroy());
  const replied = new Promise<void>((resolve) => first.once('data', () => resolve()));
  first.write(Buffer.concat([proxyV1('10.1.1.1'), Buffer.from('one')]));
  await replied;
  return first;
}

export function acceptPathCase(name: string, engine: () => Engine, expectNative: boolean): void {
  const start = async (t: T, spec: ListenerSpec): Promise<{ listener: Listener; port: number }> => {
    const r = await listen(t, spec, undefined, engine());
    assert.equal(r.listener.acceptsNatively, expectNative, 'accept path');
    return r;
  };
  const echo = async (t: T, tag?: string) => {
    const e = await startEcho(tag);
    t.after(() => e.close());
    return e;
  };
  const settled = (l: Listener) => waitFor(() => l.activeConnections === 0, 20_000, 'every connection closed');

  test(`${name}: a dead target is retried and the next one serves; attempts, outcome and bytes counted`, async (t) => {
    const [dead] = await closedPorts(t, 1);
    const live = await echo(t, 'L');
    const { listener, port } = await start(t, makeSpec([`127.0.0.1:${dead}`, `127.0.0.1:${live.port}`], { strategy: 'first' }));
    const r = await exchange(port, 'hello');
    assert.equal(r.error, undefined);
    assert.equal(r.reply, 'L:hello');
    await settled(listener);
    const m = listener.metricsSnapshot();
    assert.deepEqual(m.connections, { ok: 1 });
    assert.deepEqual(m.attempts, { [`127.0.0.1:${dead}`]: { refused: 1 }, [`127.0.0.1:${live.port}`]: { ok: 1 } });
    assert.deepEqual([m.bytesIn, m.bytesOut], [5, 7]);
    assert.equal(m.connectDuration.counts.reduce((a, b) => a + b, 0), 1);
    assert.equal(m.sessionDuration.counts.reduce((a, b) => a + b, 0), 1);
    // Passive health heard the refusal: the dead target's report says so.
    const dr = listener.targetsReport().targets.find((x) => x.target === `127.0.0.1:${dead}`);
    assert.equal(dr?.activeConnections, 0);
  });

  test(`${name}: every target dead — the client is reset when the attempts run out, counted connect-failed`, async (t) => {
    const dead = await closedPorts(t, 2);
    const { listener, port } = await start(t, makeSpec(dead.map((p) => `127.0.0.1:${p}`), { connectTimeoutMs: 60_000 }));
    const r = await exchange(port, 'hi', '127.0.0.1', 30_000);
    assert.equal(r.error?.code, 'ECONNRESET');
    await settled(listener);
    const m = listener.metricsSnapshot();
    assert.deepEqual(m.connections, { 'connect-failed': 1 });
    assert.deepEqual(m.failures, { ERR_CONNECT_EXHAUSTED: 1 });
    // max(3, 2 × pool size) attempts, spread over both targets.
    const tried = Object.values(m.attempts).reduce((n, a) => n + (a.refused ?? 0), 0);
    assert.equal(tried, 4);
  });

  test(`${name}: ACL deny — reset, counted denied, no attempt made`, async (t) => {
    const live = await echo(t);
    const { listener, port } = await start(t, makeSpec([`127.0.0.1:${live.port}`], { deny: ['127.0.0.0/8', '::ffff:127.0.0.0/104'] }));
    const c = await connectFrom(port);
    assert.equal(c.verdict, 'reset');
    await settled(listener);
    const m = listener.metricsSnapshot();
    assert.deepEqual(m.connections, { denied: 1 });
    assert.deepEqual(m.attempts, {});
  });

  test(`${name}: MaxConnections 1 — the second connection is refused while the first is open, admitted after it closes`, async (t) => {
    const live = await echo(t);
    const { listener, port } = await start(t, makeSpec([`127.0.0.1:${live.port}`], { maxConnections: 1 }));
    const held: Held[] = [];
    t.after(() => Promise.all(held.map((h) => h.close())));
    const first = await connectFrom(port);
    held.push(first.held);
    assert.equal(first.verdict, 'served');
    assert.equal(listener.activeConnections, 1);
    assert.equal(listener.metricsSnapshot().targetActive[`127.0.0.1:${live.port}`], 1);
    const second = await connectFrom(port);
    held.push(second.held);
    assert.equal(second.verdict, 'reset');
    await first.held.close();
    await settled(listener);
    assert.equal(listener.metricsSnapshot().targetActive[`127.0.0.1:${live.port}`], 0);
    const third = await connectFrom(port);
    held.push(third.held);
    assert.equal(third.verdict, 'served');
    assert.equal(listener.metricsSnapshot().connections['over-limit'], 1);
  });

  test(`${name}: drain — stops accepting at once, an open connection keeps flowing, the rest is closed at the deadline`, async (t) => {
    const live = await echo(t, 'D');
    const { listener, port } = await start(t, makeSpec([`127.0.0.1:${live.port}`]));
    const open = await connectFrom(port);
    assert.equal(open.verdict, 'served');
    t.after(() => open.held.close());
    const drained = listener.drain(1500);
    // The port is closed when drain() has started: a new connection is refused by the kernel.
    const refused = await new Promise<string | undefined>((resolve) => {
      const s = net.connect(port, '127.0.0.1');
      s.on('connect', () => { s.destroy(); resolve(undefined); });
      s.on('error', (e: NodeJS.ErrnoException) => resolve(e.code));
    });
    assert.equal(refused, 'ECONNREFUSED');
    // Still forwarding while draining.
    open.held.socket.write('more');
    await waitFor(() => open.held.socket.bytesRead >= 'D:hi'.length + 'more'.length, 20_000, 'reply while draining');
    const r = await drained;
    assert.equal(r.closedByTimeout, 1);
    const m = listener.metricsSnapshot();
    assert.deepEqual(m.connections, { drained: 1 });
    assert.deepEqual(m.failures, { ERR_DRAINED: 1 });
    assert.equal(m.activeConnections, 0);
  });

  test(`${name}: Node sockets per open connection — ${expectNative ? 'none in the proxy' : 'two in the proxy (client and upstream)'}`, async (t) => {
    const live = await echo(t, 'S');
    const { listener, port } = await start(t, makeSpec([`127.0.0.1:${live.port}`]));
    const tcp = () => process.getActiveResourcesInfo().filter((r) => r === 'TCPSocketWrap').length;
    // Earlier tests' sockets finish closing on their own schedule: start from none.
    await waitFor(() => tcp() === 0, 20_000, 'no TCP socket open in this process');
    const before = tcp();
    const c = await connectFrom(port);
    t.after(() => c.held.close());
    assert.equal(c.verdict, 'served');
    await waitFor(() => live.connections === 1, 20_000, 'the target has the connection');
    // The test's own client and the echo target's accepted socket are two; the proxy adds its own.
    assert.equal(tcp() - before, expectNative ? 2 : 4);
    assert.equal(listener.activeConnections, 1);
  });

  test(`${name}: 50 concurrent connections — each counted once, bytes exact, per-target counts back to 0`, async (t) => {
    const a = await echo(t, 'A');
    const b = await echo(t, 'B');
    const { listener, port } = await start(t, makeSpec([`127.0.0.1:${a.port}`, `127.0.0.1:${b.port}`]));
    const rs = await Promise.all(Array.from({ length: 50 }, (_, i) => exchange(port, `m${i}`)));
    let out = 0;
    rs.forEach((r, i) => {
      assert.equal(r.error, undefined);
      assert.match(r.reply, new RegExp(`^[AB]:m${i}$`));
      out += r.reply.length;
    });
    await settled(listener);
    const m = listener.metricsSnapshot();
    assert.deepEqual(m.connections, { ok: 50 });
    assert.equal(m.bytesIn, rs.reduce((n, _r, i) => n + `m${i}`.length, 0));
    assert.equal(m.bytesOut, out);
    assert.deepEqual(Object.values(m.targetActive), [0, 0]);
    assert.deepEqual(m.attempts, { [`127.0.0.1:${a.port}`]: { ok: 25 }, [`127.0.0.1:${b.port}`]: { ok: 25 } });
  });

  test(`${name}: PROXY header in and out — the target gets the header rebuilt from the client's, then the bytes; the header's source is the client; counted once`, async (t) => {
    const rec = await echo(t, 'R');
    const { listener, port } = await start(t, makeSpec([`127.0.0.1:${rec.port}`], { acceptProxyProtocol: true, sendProxyProtocol: 'v1', deny: ['10.66.0.0/16'] }));
    // Split inside the header, and the bytes after it only once it is whole: read on both times.
    const r = await sendParts(port, [Buffer.from('PROXY TCP4 10.1.2.3 10.4.5'), Buffer.from('.6 1111 2222\r\n'), Buffer.from('hello')]);
    assert.equal(r.error, undefined);
    assert.equal(rec.received[0]!.toString('latin1'), 'PROXY TCP4 10.1.2.3 10.4.5.6 1111 2222\r\nhello');
    assert.equal(r.reply.toString(), `R:${rec.received[0]!.toString('latin1')}`); // the target echoes what it got
    // Admission sees the header's source: denied, reset, no attempt.
    const denied = await sendParts(port, [Buffer.from('PROXY TCP4 10.66.1.1 10.4.5.6 1111 2222\r\nhello')]);
    assert.equal(denied.error, 'ECONNRESET');
    // Not a PROXY header: reset at once.
    const bad = await sendParts(port, [Buffer.from('GET / HTTP/1.1\r\n\r\n')]);
    assert.equal(bad.error, 'ECONNRESET');
    await settled(listener);
    const m = listener.metricsSnapshot();
    assert.deepEqual(m.connections, { ok: 1, denied: 1, 'bad-handshake': 1 });
    assert.deepEqual(m.attempts, { [`127.0.0.1:${rec.port}`]: { ok: 1 } });
    assert.equal(m.bytesIn, 'PROXY TCP4 10.1.2.3 10.4.5.6 1111 2222\r\nhello'.length + 'PROXY TCP4 10.66.1.1 10.4.5.6 1111 2222\r\nhello'.length + 'GET / HTTP/1.1\r\n\r\n'.length);
  });

  test(`${name}: TLS passthrough — a ClientHello in pieces goes to its SNI's route with every byte; not TLS is reset at once; a stalled hello at HandshakeTimeoutMs`, async (t) => {
    const a = await echo(t, 'A');
    const c = await echo(t, 'C');
    const spec = makeSpec([`127.0.0.1:${c.port}`], {
      tls: { mode: 'passthrough', certs: [] },
      routes: [{ sni: ['a.example.test'], alpn: [], targets: [targetSpec(`127.0.0.1:${a.port}`)] }],
      handshakeTimeoutMs: 1000,
    });
    const { listener, port } = await start(t, spec);
    const r = await sendParts(port, [HELLO.subarray(0, 3), HELLO.subarray(3, 100), Buffer.concat([HELLO.subarray(100), Buffer.from('tail')])]);
    assert.equal(r.error, undefined);
    assert.deepEqual(r.reply, Buffer.concat([Buffer.from('A:'), HELLO, Buffer.from('tail')]));
    assert.equal(c.connections, 0);
    const bad = await sendParts(port, [Buffer.from('GET / HTTP/1.1\r\n\r\n')]);
    assert.equal(bad.error, 'ECONNRESET');
    // One byte, then nothing for 5 s: closed by the deadline, not by the client.
    const slow = await slowClient(port, HELLO.subarray(0, 12), 5000);
    assert.equal(slow.sent, 1, `closed after ${slow.sent} bytes`);
    assert.ok(slow.ms >= 900, `closed after ${slow.ms} ms`);
    await settled(listener);
    const m = listener.metricsSnapshot();
    assert.deepEqual(m.connections, { ok: 1, 'bad-handshake': 1, 'handshake-timeout': 1 });
    assert.deepEqual(m.attempts, { [`127.0.0.1:${a.port}`]: { ok: 1 } });
  });

  test(`${name}: PROXY header, then a ClientHello, held for a MaxConnections slot after the header — read on once admitted`, async (t) => {
    const a = await echo(t, 'A');
    const spec = makeSpec([], {
      acceptProxyProtocol: true,
      tls: { mode: 'passthrough', certs: [] },
      routes: [{ sni: ['a.example.test'], alpn: [], targets: [targetSpec(`127.0.0.1:${a.port}`)] }],
      maxConnections: 1,
      queueTimeoutMs: 10_000,
      handshakeTimeoutMs: 10_000,
    });
    const { listener, port } = await start(t, spec);
    const header = (src: string) => Buffer.from(`PROXY TCP4 ${src} 10.9.9.9 1111 443\r\n`);
    // The first holds the only slot until it is closed.
    const first = net.connect({ port, host: '127.0.0.1' });
    t.after(() => first.destroy());
    const firstReply = new Promise<void>((resolve) => first.once('data', () => resolve()));
    first.write(Buffer.concat([header('10.1.1.1'), HELLO]));
    await firstReply;
    // The second's header is read, then it waits for the slot; its hello arrives meanwhile.
    const second = sendParts(port, [header('10.2.2.2'), Buffer.concat([HELLO, Buffer.from('x')])]);
    await waitFor(() => listener.activeConnections === 2, 20_000, 'the second connection held');
    await new Promise((r) => setTimeout(r, 100));
    first.end();
    const r = await second;
    assert.equal(r.error, undefined);
    assert.deepEqual(r.reply, Buffer.concat([Buffer.from('A:'), HELLO, Buffer.from('x')]));
    await settled(listener);
    assert.deepEqual(listener.metricsSnapshot().connections, { ok: 2 });
  });

  test(`${name}: FirstByteTimeoutMs — a silent client is closed at the deadline, counted first-byte-timeout; one that speaks is served and stays`, async (t) => {
    const e = await echo(t, 'E');
    const { listener, port } = await start(t, makeSpec([`127.0.0.1:${e.port}`], { firstByteTimeoutMs: 300 }));
    const silent = await slowClient(port, Buffer.alloc(0), 1000);
    assert.equal(silent.error?.code, undefined, 'closed with a FIN, not reset');
    assert.ok(silent.ms >= 250, `closed after ${silent.ms} ms`);
    const talker = await sendParts(port, [Buffer.from('hi')]);
    assert.deepEqual(talker, { reply: Buffer.from('E:hi') });
    // A client that spoke and then waits past the deadline is not closed by it.
    const late = await sendParts(port, [Buffer.from('a'), Buffer.from('b')], 500);
    assert.deepEqual(late, { reply: Buffer.from('E:ab') });
    await settled(listener);
    assert.deepEqual(listener.metricsSnapshot().connections, { 'first-byte-timeout': 1, ok: 2 });
  });

  test(`${name}: held for a MaxConnections slot after its PROXY header past HandshakeTimeoutMs — reset, counted handshake-timeout, its ticket given back`, async (t) => {
    const e = await echo(t, 'E');
    const spec = makeSpec([`127.0.0.1:${e.port}`], { acceptProxyProtocol: true, maxConnections: 1, queueTimeoutMs: 10_000, handshakeTimeoutMs: 500 });
    const { listener, port } = await start(t, spec);
    const first = await holdSlot(t, port);
    // Queued behind the first for up to 10 s, but its handshake deadline comes first.
    const held = await sendParts(port, [Buffer.concat([proxyV1('10.2.2.2'), Buffer.from('two')])]);
    assert.equal(held.error, 'ECONNRESET');
    first.end();
    await settled(listener);
    assert.deepEqual(listener.metricsSnapshot().connections, { ok: 1, 'handshake-timeout': 1 });
    // The slot is free again: the next one is served at once.
    const next = await sendParts(port, [Buffer.concat([proxyV1('10.3.3.3'), Buffer.from('three')])]);
    assert.deepEqual(next, { reply: Buffer.from('E:three') });
  });

  test(`${name}: header, bytes and FIN all in while held for a MaxConnections slot — served once admitted, the FIN passed on`, async (t) => {
    const e = await echo(t, 'E');
    const spec = makeSpec([`127.0.0.1:${e.port}`], { acceptProxyProtocol: true, maxConnections: 1, queueTimeoutMs: 10_000, handshakeTimeoutMs: 10_000 });
    const { listener, port } = await start(t, spec);
    const first = await holdSlot(t, port);
    const second = sendParts(port, [Buffer.concat([proxyV1('10.2.2.2'), Buffer.from('two')])]);
    await waitFor(() => listener.activeConnections === 2, 20_000, 'the second connection held');
    await new Promise((r) => setTimeout(r, 100));
    first.end();
    assert.deepEqual(await second, { reply: Buffer.from('E:two') });
    await settled(listener);
    assert.deepEqual(listener.metricsSnapshot().connections, { ok: 2 });
  });
}
