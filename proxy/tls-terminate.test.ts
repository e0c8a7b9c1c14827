// Tls "terminate": the listener completes the handshake with the certificate the SNI names, routes
// by SNI/ALPN, forwards plaintext, and picks up renewed certificate files without a restart.
// Real TLS clients (node tls, openssl s_client), real certificates from scripts/make-test-cert.sh.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { fork } from 'node:child_process';
import { once } from 'node:events';
import { readFileSync, renameSync, writeFileSync } from 'node:fs';
import tls from 'node:tls';
import { Listener } from './listener.ts';
import { createLogger, type Logger } from './log.ts';
import { Router } from './router.ts';
import type { ListenerSpec, RouteSpec } from './spec.ts';
import { targetSpec } from './testing.ts';
import { chooseAlpn } from './tls/terminator.ts';
import {
  captureLogger, exchange, makeCert, makeSpec, sClient, sClientSubject, slowClient, startBlackhole, startRecorder, tempDir, tlsExchange, waitFor,
  type Recorder, type TestCert,
  listen,
} from './testing.ts';

const silent = createLogger({ proc: 'test' }, 'silent');
type T = { after: (fn: () => unknown) => void };


async function recorders(t: T, ...tags: string[]): Promise<Recorder[]> {
  const rs = await Promise.all(tags.map((tag) => startRecorder(tag)));
  t.after(() => Promise.all(rs.map((r) => r.close())));
  return rs;
}

const target = (r: Recorder) => targetSpec(`127.0.0.1:${r.port}`);
const route = (sni: string[], r: Recorder, alpn: string[] = []): RouteSpec => ({ sni, alpn, targets: [target(r)] });
const certSpec = (c: TestCert) => ({ certPath: c.certPath, keyPath: c.keyPath });

/** Certs: default (first), a.example.test, *.w.example.test; routes A and W; default targets D. */
async function setup(t: T, over: Partial<ListenerSpec> = {}, logger?: Logger) {
  const dir = await tempDir(t);
  const [dflt, a, w] = await Promise.all([
    makeCert(dir, 'default', ['default.example.test']),
    makeCert(dir, 'a', ['a.example.test']),
    makeCert(dir, 'w', ['*.w.example.test']),
  ]);
  const [ra, rw, rd] = await recorders(t, 'A', 'W', 'D');
  const spec = makeSpec([`127.0.0.1:${rd!.port}`], {
    tls: { mode: 'terminate', certs: [dflt!, a!, w!].map(certSpec) },
    routes: [route(['a.example.test'], ra!), route(['*.w.example.test'], rw!)],
    ...over,
  });
  const { listener, port } = await listen(t, spec, logger);
  return { dir, certs: { dflt: dflt!, a: a!, w: w! }, ra: ra!, rw: rw!, rd: rd!, listener, port };
}

/** An open TLS connection: ask() writes text and resolves with what came back up to its echo. */
async function openTls(port: number, servername: string) {
  const s = tls.connect({ port, host: '127.0.0.1', servername, rejectUnauthorized: false });
  s.on('error', () => {});
  await once(s, 'secureConnect');
  const ask = (text: string): Promise<string> => {
    let got = '';
    const onData = (d: Buffer) => { got += d; };
    s.on('data', onData);
    s.write(text);
    return waitFor(() => got.endsWith(text), 20_000, `echo of "${text}"`).then(() => got).finally(() => s.removeListener('data', onData));
  };
  return { socket: s, ask, fingerprint: s.getPeerX509Certificate()!.fingerprint256 };
}

test('serves the certificate the SNI names (exact, one-label wildcard, any case) and forwards plaintext to that route', async (t) => {
  const { certs, ra, rw, port } = await setup(t);

  const a = await tlsExchange(port, 'hello a', { servername: 'a.example.test' });
  assert.equal(a.error, undefined);
  assert.equal(a.reply, 'A:hello a');
  assert.equal(a.peerCert?.fingerprint256, certs.a.fingerprint256);
  // The target saw exactly the plaintext: no TLS record, no PROXY header.
  await waitFor(() => ra.received[0]?.toString() === 'hello a', 20_000, 'plaintext at target A');

  const w = await tlsExchange(port, 'hello w', { servername: 'X.W.Example.TEST' });
  assert.equal(w.reply, 'W:hello w');
  assert.equal(w.peerCert?.fingerprint256, certs.w.fingerprint256);
  assert.equal(rw.received.length, 1);

  // "*.w.example.test" covers one label only, as a client checks it: a deeper name gets the default
  // certificate (routes match any depth, so it still reaches W).
  const deep = await tlsExchange(port, 'deep', { servername: 'y.x.w.example.test' });
  assert.equal(deep.peerCert?.fingerprint256, certs.dflt.fingerprint256);
  assert.equal(deep.reply, 'W:deep');
});

test('openssl s_client: the right certificate by -servername; no SNI or an unknown one gets the default certificate and pool', async (t) => {
  const { port } = await setup(t);
  const a = await sClient(port, ['-servername', 'a.example.test'], 'ping\n', /^A:ping$/m);
  assert.ok(a.matched, a.stdout);
  assert.equal(sClientSubject(a.stdout), 'a.example.test', a.stdout);

  const none = await sClient(port, ['-noservername'], 'ping\n', /^D:ping$/m);
  assert.ok(none.matched, none.stdout);
  assert.equal(sClientSubject(none.stdout), 'default.example.test', none.stdout);

  const unknown = await sClient(port, ['-servername', 'zzz.example.test'], 'ping\n', /^D:ping$/m);
  assert.ok(unknown.matched, unknown.stdout);
  assert.equal(sClientSubject(unknown.stdout), 'default.example.test', unknown.stdout);
});

test('an app with no ALPN routes negotiates no protocol, whatever the client offers (it cannot know what targets speak)', async (t) => {
  const { port } = await setup(t);
  const r = await tlsExchange(port, 'x', { servername: 'a.example.test', ALPNProtocols: ['h2', 'http/1.1'] });
  assert.equal(r.alpn, false);
  assert.equal(r.reply, 'A:x');
});

test('an unknown SNI with no default targets is reset; known names still served', async (t) => {
  const { port, listener } = await setup(t, { targets: [] });
  const r = await tlsExchange(port, 'x', { servername: 'nope.example.test' });
  assert.equal(r.error?.code, 'ECONNRESET');
  assert.equal(r.reply, '');
  assert.equal((await tlsExchange(port, 'y', { servername: 'a.example.test' })).reply, 'A:y');
  await waitFor(() => listener.counters().activeConnections === 0, 20_000, 'sessions closed');
});

test('ALPN routing: the protocol chosen is one the matched route allows, and the connection takes that route', async (t) => {
  const [h2] = await recorders(t, 'H2');
  const { port } = await setup(t, {}, undefined).then(async (s) => {
    // A second listener on the same certs, with an h2-only route for h.example.test.
    const spec = makeSpec([`127.0.0.1:${s.rd.port}`], {
      tls: { mode: 'terminate', certs: [s.certs.dflt, s.certs.a].map(certSpec) },
      routes: [route(['h.example.test'], h2!, ['h2'])],
    });
    return listen(t, spec);
  });
  const both = await tlsExchange(port, 'x', { servername: 'h.example.test', ALPNProtocols: ['http/1.1', 'h2'] });
  assert.equal(both.alpn, 'h2');
  assert.equal(both.reply, 'H2:x');
  // No route allows http/1.1 for this name: the default pool, and the client's first protocol.
  const h1 = await tlsExchange(port, 'y', { servername: 'h.example.test', ALPNProtocols: ['http/1.1', 'spdy/3'] });
  assert.equal(h1.alpn, 'http/1.1');
  assert.equal(h1.reply, 'D:y');
  const none = await tlsExchange(port, 'z', { servername: 'h.example.test' });
  assert.equal(none.alpn, false);
  assert.equal(none.reply, 'D:z');
  const s = await sClient(port, ['-servername', 'h.example.test', '-alpn', 'h2'], 'q\n', /^H2:q$/m);
  assert.ok(s.matched, s.stdout);
  assert.match(s.stdout, /ALPN protocol: h2/);
});

test('chooseAlpn: the client\'s most preferred protocol that keeps the route its whole offer matched', () => {
  const t = (p: number) => [targetSpec(`127.0.0.1:${p}`)];
  const router = new Router(t(1), [
    { sni: ['h.test'], alpn: ['h2', 'h3'], targets: t(2) },
    { sni: ['*.test'], alpn: ['http/1.1'], targets: t(3) },
    { sni: ['any.test'], alpn: [], targets: t(4) },
  ]);
  const cases: [string | undefined, string[], string | undefined][] = [
    ['h.test', ['http/1.1', 'h3', 'h2'], 'h3'], // route h.test allows h3 and h2; client prefers h3
    ['h.test', ['http/1.1'], 'http/1.1'], // falls to *.test, which allows it
    ['x.test', ['foo', 'http/1.1'], 'http/1.1'],
    ['x.test', ['foo', 'bar'], 'foo'], // default pool, no http/1.1 offered: the client's first
    ['any.test', ['bar', 'h2'], 'bar'],
    [undefined, ['h2', 'http/1.1'], 'http/1.1'], // unconstrained: http/1.1 when offered, never a guess of h2
    [undefined, ['h2', 'spdy/3'], 'h2'],
    ['h.test', [], undefined],
  ];
  for (const [sni, offered, want] of cases) assert.equal(chooseAlpn(router, sni, offered), want, `${sni} ${offered.join(',')}`);
});

test('a renewed certificate (atomic rename) is served to new connections without a restart; open connections keep working', async (t) => {
  const { dir, certs, port } = await setup(t);
  const before = await openTls(port, 'a.example.test');
  t.after(() => before.socket.destroy());
  assert.equal(before.fingerprint, certs.a.fingerprint256);
  assert.equal(await before.ask('one'), 'A:one');

  // make-test-cert.sh writes beside the target and renames over it (key, then cert), like certbot.
  const renewed = await makeCert(dir, 'a', ['a.example.test']);
  assert.notEqual(renewed.fingerprint256, certs.a.fingerprint256);
  await waitFor(async () => (await tlsExchange(port, 'p', { servername: 'a.example.test' })).peerCert?.fingerprint256 === renewed.fingerprint256, 20_000, 'renewed certificate served');

  // The connection opened before the renewal is untouched.
  assert.equal(await before.ask('two'), 'two');
  // The other certificates did not change.
  assert.equal((await tlsExchange(port, 'd', {})).peerCert?.fingerprint256, certs.dflt.fingerprint256);
});

test('a half-written or broken renewal keeps the previous certificate and logs a warning; the completed file is then picked up', async (t) => {
  const { logger, lines } = await captureLogger('info');
  const { dir, certs, port } = await setup(t, {}, logger);
  const next = await makeCert(await tempDir(t), 'next', ['a.example.test']);

  // The key lands, the certificate only half: the pair cannot load.
  writeFileSync(certs.a.keyPath, next.key);
  writeFileSync(certs.a.certPath, next.pem.subarray(0, next.pem.length >> 1));
  await waitFor(() => lines.some((l) => l.level === 40 && l.code === 'ERR_TLS_CERT' && l.cert === certs.a.certPath), 20_000, 'warning about the broken cert');
  const during = await tlsExchange(port, 'x', { servername: 'a.example.test' });
  assert.equal(during.reply, 'A:x');
  assert.equal(during.peerCert?.fingerprint256, certs.a.fingerprint256, 'still the old certificate');

  writeFileSync(certs.a.certPath, next.pem);
  await waitFor(async () => (await tlsExchange(port, 'p', { servername: 'a.example.test' })).peerCert?.fingerprint256 === next.fingerprint256, 20_000, 'completed certificate served');
  assert.ok(lines.some((l) => l.event === 'cert-reloaded' && l.cert === certs.a.certPath));

  // Garbage renamed over the file: same story, and the process is fine.
  writeFileSync(`${dir}/junk`, 'not a certificate\n');
  renameSync(`${dir}/junk`, certs.a.certPath);
  const warnings = lines.filter((l) => l.level === 40).length;
  await waitFor(() => lines.filter((l) => l.level === 40).length > warnings, 20_000, 'second warning');
  assert.equal((await tlsExchange(port, 'y', { servername: 'a.example.test' })).peerCert?.fingerprint256, next.fingerprint256);
});

test('bytes that are not TLS are reset at once, not after HandshakeTimeoutMs', async (t) => {
  // A handshake timeout far beyond the client's patience: a reset the client sees came from the parse.
  const { port, listener } = await setup(t, { handshakeTimeoutMs: 120_000 });
  const r = await exchange(port, 'GET / HTTP/1.1\r\nHost: a.example.test\r\n\r\n', '127.0.0.1', 30_000);
  assert.equal(r.error?.code, 'ECONNRESET');
  await waitFor(() => listener.counters().activeConnections === 0, 20_000, 'session closed');
});

test('a client that sends its ClientHello a byte at a time is closed at HandshakeTimeoutMs while others are served', async (t) => {
  const { port } = await setup(t, { handshakeTimeoutMs: 700 });
  const hello = readFileSync(new URL('./tls/fixtures/openssl-sni-alpn.bin', import.meta.url));
  const slow = slowClient(port, hello, 100);
  const meanwhile = await tlsExchange(port, 'm', { servername: 'a.example.test' });
  assert.equal(meanwhile.reply, 'A:m');
  const r = await slow;
  assert.ok(r.ms >= 600, `closed after ${r.ms} ms`);
  assert.ok(r.sent < hello.length, `closed after ${r.sent} of ${hello.length} bytes`);
});

test('a certificate that cannot be read fails the start with ERR_TLS_CERT (no crash), in-process and over IPC', async (t) => {
  const dir = await tempDir(t);
  const a = await makeCert(dir, 'a', ['a.example.test']);
  const w = await makeCert(dir, 'w', ['w.example.test']);
  const missing = makeSpec(['127.0.0.1:1'], { tls: { mode: 'terminate', certs: [{ certPath: `${dir}/gone.crt`, keyPath: a.keyPath }] } });
  await assert.rejects(new Listener(missing, { logger: silent }).start(), (err: Error & { code: string }) => {
    assert.equal(err.code, 'ERR_TLS_CERT');
    assert.match(err.message, new RegExp(`${dir}/gone\\.crt.*no such file`));
    return true;
  });
  const mismatched = makeSpec(['127.0.0.1:1'], { tls: { mode: 'terminate', certs: [certSpec(a), { certPath: w.certPath, keyPath: a.keyPath }] } });
  await assert.rejects(new Listener(mismatched, { logger: silent }).start(), (err: Error & { code: string }) => {
    assert.equal(err.code, 'ERR_TLS_CERT');
    assert.match(err.message, /w\.crt.*does not load/);
    return true;
  });

  const child = fork(new URL('./main.ts', import.meta.url), [], { execArgv: [], env: { PATH: process.env.PATH, LOG_LEVEL: 'silent' }, stdio: ['ignore', 'ignore', 'inherit', 'ipc'] });
  t.after(() => { if (child.exitCode === null && child.signalCode === null) child.kill('SIGKILL'); });
  const exited = once(child, 'exit');
  const [msg] = (await (child.send({ v: 1, type: 'start', spec: missing, generation: 1, worker: 0 }), once(child, 'message'))) as [{ type: string; error: { code: string } }];
  assert.equal(msg.type, 'failed');
  assert.equal(msg.error.code, 'ERR_TLS_CERT');
  assert.equal((await exited)[0], 1);
});

test('idle timeout and drain close TLS sessions cleanly (both sides closed, counters settled)', async (t) => {
  const { port, listener, ra } = await setup(t, { idleTimeoutMs: 300 });
  const idle = await openTls(port, 'a.example.test');
  // Taken before the last bytes are sent: the session's last activity comes after it.
  const t0 = Date.now();
  assert.equal(await idle.ask('x'), 'A:x');
  await once(idle.socket, 'close');
  assert.ok(Date.now() - t0 >= 250, `closed after ${Date.now() - t0} ms`);

  const open = await openTls(port, 'a.example.test');
  t.after(() => open.socket.destroy());
  assert.equal(await open.ask('y'), 'A:y');
  const closed = once(open.socket, 'close');
  assert.deepEqual(await listener.drain(50), { closedByTimeout: 1 });
  await closed;
  assert.equal(listener.counters().activeConnections, 0);
  assert.ok(listener.counters().bytesIn > 0);
  assert.equal(ra.received.length, 2);
});

test('a client that closes its side right after the handshake (with a request or without) has its close passed on, even while the target is being connected', async (t) => {
  // The first target never answers the SYN, so the connect takes the attempt timeout (300 ms); the
  // client's data and close_notify/FIN arrive meanwhile and must reach the target that answers.
  const { port: stuck, stop } = await startBlackhole();
  t.after(stop);
  const [live] = await recorders(t, 'L');
  const dir = await tempDir(t);
  const cert = await makeCert(dir, 'a', ['a.example.test']);
  const { port } = await listen(t, makeSpec([`127.0.0.1:${stuck}`, `127.0.0.1:${live!.port}`], {
    connectAttemptTimeoutMs: 300,
    tls: { mode: 'terminate', certs: [certSpec(cert)] },
  }));
  const r = await tlsExchange(port, 'request', { servername: 'a.example.test' });
  assert.equal(r.error, undefined);
  assert.equal(r.reply, 'L:request');
  assert.ok(r.ms >= 250, `the stuck attempt should have cost its timeout, took ${r.ms} ms`);
  // Nothing but the close: the target must still see its end of input.
  const empty = await tlsExchange(port, '', { servername: 'a.example.test' });
  assert.equal(empty.error, undefined);
  assert.equal(empty.reply, '');
  await waitFor(() => live!.received.length === 2, 20_000, 'second connection at the target');
});
