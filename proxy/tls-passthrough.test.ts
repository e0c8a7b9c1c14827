// Tls "passthrough": the listener peeks the ClientHello, routes by SNI (and ALPN), and forwards the
// encrypted bytes untouched, so the certificate a client sees is its target's. Real TLS targets with
// their own certificates, real clients (node tls, openssl s_client).
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import type { Logger } from './log.ts';
import type { ListenerSpec, RouteSpec } from './spec.ts';
import { targetSpec } from './testing.ts';
import {
  captureLogger, choppedSocket, exchange, makeCert, makeSpec, sClient, sClientSubject, slowClient, startTlsEcho, tempDir, tlsExchange, waitFor,
  type TestCert, type TlsTarget,
  listen,
} from './testing.ts';

type T = { after: (fn: () => unknown) => void };


const route = (sni: string[], target: TlsTarget, alpn: string[] = []): RouteSpec => ({ sni, alpn, targets: [targetSpec(`127.0.0.1:${target.port}`)] });

/** Three TLS targets, each with its own certificate: A (a.example.test), B (*.b.example.test), C (the default pool). */
async function setup(t: T, over: Partial<ListenerSpec> = {}, logger?: Logger) {
  const dir = await tempDir(t);
  const [a, b, c] = await Promise.all([
    makeCert(dir, 'a', ['a.example.test']),
    makeCert(dir, 'b', ['*.b.example.test']),
    makeCert(dir, 'c', ['c.example.test']),
  ]) as [TestCert, TestCert, TestCert];
  const [ta, tb, tc] = await Promise.all([startTlsEcho('A', a), startTlsEcho('B', b), startTlsEcho('C', c)]);
  t.after(() => Promise.all([ta, tb, tc].map((x) => x.close())));
  const spec = makeSpec([`127.0.0.1:${tc.port}`], {
    tls: { mode: 'passthrough', certs: [] },
    routes: [route(['a.example.test'], ta), route(['*.b.example.test'], tb)],
    ...over,
  });
  const { listener, port } = await listen(t, spec, logger);
  return { dir, certs: { a, b, c }, ta, tb, tc, listener, port };
}

test('node tls reaches the target its SNI names; the certificate it sees is that target\'s own', async (t) => {
  const { certs, port } = await setup(t);
  const a = await tlsExchange(port, 'hi', { servername: 'a.example.test' });
  assert.equal(a.error, undefined);
  assert.equal(a.reply, 'A:hi');
  assert.equal(a.peerCert?.fingerprint256, certs.a.fingerprint256);

  for (const name of ['x.b.example.test', 'Y.X.B.Example.Test']) {
    const b = await tlsExchange(port, name, { servername: name });
    assert.equal(b.reply, `B:${name}`);
    assert.equal(b.peerCert?.fingerprint256, certs.b.fingerprint256);
  }
});

test('openssl s_client -servername reaches the right target; no SNI or an unmatched one goes to the default pool', async (t) => {
  const { port } = await setup(t);
  const a = await sClient(port, ['-servername', 'a.example.test'], 'ping\n', /^A:ping$/m);
  assert.ok(a.matched, a.stdout);
  assert.equal(sClientSubject(a.stdout), 'a.example.test');

  const none = await sClient(port, ['-noservername'], 'ping\n', /^C:ping$/m);
  assert.ok(none.matched, none.stdout);
  assert.equal(sClientSubject(none.stdout), 'c.example.test');

  const other = await sClient(port, ['-servername', 'b.example.test'], 'ping\n', /^C:ping$/m); // "*.b" does not cover "b"
  assert.ok(other.matched, other.stdout);
  assert.equal(sClientSubject(other.stdout), 'c.example.test');
});

test('without default targets, an unmatched SNI and a missing SNI are reset before any target is tried', async (t) => {
  const { port, listener, ta, tb } = await setup(t, { targets: [] });
  const unknown = await tlsExchange(port, 'x', { servername: 'nope.example.test' });
  assert.equal(unknown.error?.code, 'ECONNRESET');
  assert.equal(unknown.peerCert, undefined, 'no handshake happened');
  const none = await tlsExchange(port, 'x', {});
  assert.equal(none.error?.code, 'ECONNRESET');
  assert.equal((await tlsExchange(port, 'ok', { servername: 'a.example.test' })).reply, 'A:ok');
  assert.equal(ta.alpn.length + tb.alpn.length, 1);
  await waitFor(() => listener.counters().activeConnections === 0, 20_000, 'sessions closed');
});

test('ALPN routing: a route with Alpn takes only clients offering one of its protocols', async (t) => {
  const dir = await tempDir(t);
  const cert = await makeCert(dir, 'h', ['h.example.test']);
  const h2 = await startTlsEcho('H2', cert, ['h2']);
  const h1 = await startTlsEcho('H1', cert, ['http/1.1']);
  t.after(() => Promise.all([h2.close(), h1.close()]));
  const { port } = await listen(t, makeSpec([`127.0.0.1:${h1.port}`], {
    tls: { mode: 'passthrough', certs: [] },
    routes: [route(['h.example.test'], h2, ['h2'])],
  }));
  const offersH2 = await tlsExchange(port, 'x', { servername: 'h.example.test', ALPNProtocols: ['http/1.1', 'h2'] });
  assert.equal(offersH2.reply, 'H2:x');
  assert.equal(offersH2.alpn, 'h2', 'the target negotiated, not the listener');
  const h1Only = await tlsExchange(port, 'y', { servername: 'h.example.test', ALPNProtocols: ['http/1.1'] });
  assert.equal(h1Only.reply, 'H1:y');
  assert.equal(h1Only.alpn, 'http/1.1');
  const s = await sClient(port, ['-servername', 'h.example.test', '-alpn', 'h2'], 'q\n', /^H2:q$/m);
  assert.ok(s.matched, s.stdout);
});

test('bytes that are not TLS are reset at once, not after HandshakeTimeoutMs', async (t) => {
  const { logger, lines } = await captureLogger('debug');
  // A handshake timeout far beyond the client's patience: a reset the client sees came from the parse, not the timer.
  const { port } = await setup(t, { handshakeTimeoutMs: 120_000 }, logger);
  for (const junk of ['GET / HTTP/1.1\r\n\r\n', 'PROXY TCP4 1.2.3.4 5.6.7.8 1 2\r\n', '\x15\x03\x03\x00\x02\x02\x28']) {
    const r = await exchange(port, junk, '127.0.0.1', 30_000);
    assert.equal(r.error?.code, 'ECONNRESET', JSON.stringify(junk));
  }
  await waitFor(() => lines.filter((l) => l.event === 'access').length === 3, 20_000, 'three access lines');
  assert.deepEqual(lines.filter((l) => l.event === 'access').map((l) => [l.outcome, l.target]), Array(3).fill(['bad-handshake', undefined]));
});

test('a client sending a byte a second is closed at HandshakeTimeoutMs and costs the others nothing', async (t) => {
  const { port, listener } = await setup(t, { handshakeTimeoutMs: 1500 });
  const hello = readFileSync(new URL('./tls/fixtures/openssl-sni-alpn.bin', import.meta.url));
  const slow = slowClient(port, hello, 1000);
  const fast = await Promise.all([0, 1, 2].map((i) => tlsExchange(port, `f${i}`, { servername: 'a.example.test' })));
  assert.deepEqual(fast.map((r) => r.reply), ['A:f0', 'A:f1', 'A:f2']);
  const r = await slow;
  // Closed by the handshake deadline: not before it, and long before the ClientHello was complete.
  assert.ok(r.ms >= 1400, `closed after ${r.ms} ms`);
  assert.ok(r.sent >= 1 && r.sent < 20, `closed after ${r.sent} of ${hello.length} bytes`);
  await waitFor(() => listener.counters().activeConnections === 0, 20_000, 'sessions closed');
});

test('a ClientHello arriving in many small segments, or spread over two records, is reassembled and routed', async (t) => {
  const { certs, port } = await setup(t);
  const chopped = await tlsExchange(port, 'small', { servername: 'x.b.example.test', socket: await choppedSocket(port, 7) });
  assert.equal(chopped.reply, 'B:small');
  assert.equal(chopped.peerCert?.fingerprint256, certs.b.fingerprint256);
  // ~18 KB of ALPN offer: more than one 16 KiB record, so the handshake message is fragmented.
  const big = Array.from({ length: 90 }, (_, i) => `x-${i}-`.padEnd(200, 'p'));
  const r = await tlsExchange(port, 'big', { servername: 'a.example.test', ALPNProtocols: big });
  assert.equal(r.reply, 'A:big');
});
