// PROXY protocol through the listener: headers accepted from a load balancer in front (v1, v2, split
// or in one chunk with the ClientHello), headers sent to targets (checked byte for byte), and
// connections without a valid header reset at once.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { once } from 'node:events';
import { readFileSync } from 'node:fs';
import net from 'node:net';
import tls from 'node:tls';
import {
  Command, INETProtocol, IPv4Address, IPv4ProxyAddress, IPv6Address, IPv6ProxyAddress, Peer, TransportProtocol, UnspecProxyAddress,
  V1ProxyProtocol, V2ProxyProtocol,
} from 'proxy-protocol-js';
import {
  captureLogger, choppedSocket, listen, makeCert, makeSpec, targetSpec, slowClient, startRecorder, tempDir, tlsExchange, waitFor, type Recorder, type TestCert,
} from './testing.ts';

type T = { after: (fn: () => unknown) => void };


async function recorder(t: T, tag = 'R'): Promise<Recorder> {
  const r = await startRecorder(tag);
  t.after(() => r.close());
  return r;
}

/** Connect, write `bytes` in one write, half-close, collect the reply. Never rejects. */
function rawSend(port: number, bytes: Uint8Array | string, host = '127.0.0.1', timeoutMs = 20_000): Promise<{ reply: Buffer; localPort: number; error?: NodeJS.ErrnoException; ms: number }> {
  return new Promise((resolve) => {
    const t0 = performance.now();
    const chunks: Buffer[] = [];
    let localPort = 0;
    const s = net.connect({ port, host, allowHalfOpen: true });
    const done = (error?: NodeJS.ErrnoException) => {
      s.destroy();
      resolve({ reply: Buffer.concat(chunks), localPort, ms: performance.now() - t0, ...(error ? { error } : {}) });
    };
    s.setTimeout(timeoutMs, () => done(Object.assign(new Error('timeout'), { code: 'ETIMEDOUT' })));
    s.on('connect', () => {
      localPort = s.localPort!;
      s.end(bytes);
    });
    s.on('data', (d: Buffer) => chunks.push(d));
    s.on('end', () => done());
    s.on('error', (e) => done(e));
  });
}

const v4 = (a: number[]) => IPv4Address.createFrom(a);
const v6 = (a: number[]) => IPv6Address.createFrom(a);
const port16 = (p: number) => [p >> 8, p & 0xff];
const V2_SIG = [0x0d, 0x0a, 0x0d, 0x0a, 0x00, 0x0d, 0x0a, 0x51, 0x55, 0x49, 0x54, 0x0a];
/** What a load balancer in front would send for client 203.0.113.7:40000 → 198.51.100.1:443. */
const LB_V1 = new V1ProxyProtocol(INETProtocol.TCP4, new Peer('203.0.113.7', 40000), new Peer('198.51.100.1', 443)).build();
const LB_V2 = () => Buffer.from(new V2ProxyProtocol(Command.PROXY, TransportProtocol.STREAM, new IPv4ProxyAddress(v4([203, 0, 113, 7]), 40000, v4([198, 51, 100, 1]), 443)).build());

test('SendProxyProtocol "v1": the target first gets exactly "PROXY TCP4 <client> <listener> <ports>\\r\\n", then the client\'s bytes', async (t) => {
  const rec = await recorder(t);
  const { port } = await listen(t, makeSpec([`127.0.0.1:${rec.port}`], { sendProxyProtocol: 'v1' }));
  const r = await rawSend(port, 'hello');
  const line = `PROXY TCP4 127.0.0.1 127.0.0.1 ${r.localPort} ${port}\r\n`;
  assert.equal(rec.received[0]!.toString('latin1'), `${line}hello`);

  const six = await rawSend(port, 'over v6', '::1');
  assert.equal(rec.received[1]!.toString('latin1'), `PROXY TCP6 ::1 ::1 ${six.localPort} ${port}\r\nover v6`);
});

test('SendProxyProtocol "v2": the target first gets the exact binary header (IPv4 and IPv6 clients)', async (t) => {
  const rec = await recorder(t);
  const { port } = await listen(t, makeSpec([`127.0.0.1:${rec.port}`], { sendProxyProtocol: 'v2' }));
  const r = await rawSend(port, 'hello');
  const want4 = Buffer.from([...V2_SIG, 0x21, 0x11, 0x00, 0x0c, 127, 0, 0, 1, 127, 0, 0, 1, ...port16(r.localPort), ...port16(port)]);
  assert.deepEqual(rec.received[0], Buffer.concat([want4, Buffer.from('hello')]));

  const six = await rawSend(port, 'v6', '::1');
  const loop6 = [...Array(15).fill(0), 1];
  const want6 = Buffer.from([...V2_SIG, 0x21, 0x21, 0x00, 0x24, ...loop6, ...loop6, ...port16(six.localPort), ...port16(port)]);
  assert.deepEqual(rec.received[1], Buffer.concat([want6, Buffer.from('v6')]));
});

test('AcceptProxyProtocol: the client named by a v1 or v2 header is the one passed on (and logged)', async (t) => {
  const { logger, lines } = await captureLogger('debug');
  const rec = await recorder(t);
  const { port } = await listen(t, makeSpec([`127.0.0.1:${rec.port}`], { acceptProxyProtocol: true, sendProxyProtocol: 'v2' }), logger);

  // Header, bytes and FIN in one go: the FIN arrives while the target is being connected and must
  // still be passed on, or the target (which answers at end of input) would wait forever.
  const r = await rawSend(port, `${LB_V1}hello`);
  assert.equal(r.error, undefined);
  assert.deepEqual(r.reply, Buffer.concat([Buffer.from('R:'), LB_V2(), Buffer.from('hello')]));
  assert.deepEqual(rec.received[0], Buffer.concat([LB_V2(), Buffer.from('hello')]), 'v1 in, the same endpoints out as v2, header stripped');

  await rawSend(port, Buffer.concat([LB_V2(), Buffer.from('again')]));
  assert.deepEqual(rec.received[1], Buffer.concat([LB_V2(), Buffer.from('again')]));

  // A header and a FIN, nothing else: the target gets our header and its end of input.
  const bare = await rawSend(port, LB_V1);
  assert.equal(bare.error, undefined);
  assert.deepEqual(bare.reply, Buffer.concat([Buffer.from('R:'), LB_V2()]));

  await waitFor(() => lines.filter((l) => l.event === 'access').length === 3, 20_000, 'access lines');
  assert.deepEqual(lines.filter((l) => l.event === 'access').map((l) => l.client), ['203.0.113.7', '203.0.113.7', '203.0.113.7']);
});

test('AcceptProxyProtocol: an IPv6 v2 header goes on as TCP6, a header split into 1-byte segments works, and LOCAL keeps the real peer', async (t) => {
  const rec = await recorder(t);
  const { port } = await listen(t, makeSpec([`127.0.0.1:${rec.port}`], { acceptProxyProtocol: true, sendProxyProtocol: 'v1' }));
  const db8 = (last: number) => v6([0x20, 0x01, 0x0d, 0xb8, ...Array(11).fill(0), last]);
  const v2six = Buffer.from(new V2ProxyProtocol(Command.PROXY, TransportProtocol.STREAM, new IPv6ProxyAddress(db8(7), 5555, db8(1), 443)).build());
  assert.equal((await rawSend(port, Buffer.concat([v2six, Buffer.from('six')]))).error, undefined);
  assert.equal(rec.received[0]!.toString('latin1'), 'PROXY TCP6 2001:db8::7 2001:db8::1 5555 443\r\nsix');

  const chopped = await choppedSocket(port, 1);
  chopped.on('data', () => {});
  chopped.end(`${LB_V1}split`);
  await waitFor(() => rec.received[1]?.toString('latin1') === 'PROXY TCP4 203.0.113.7 198.51.100.1 40000 443\r\nsplit', 20_000, 'split header passed on');
  chopped.destroy();

  // LOCAL: a health check from the balancer itself; the connection's own endpoints stand.
  const local = Buffer.from(new V2ProxyProtocol(Command.LOCAL, TransportProtocol.UNSPEC, new UnspecProxyAddress()).build());
  const r = await rawSend(port, Buffer.concat([local, Buffer.from('hc')]));
  assert.equal(r.error, undefined);
  assert.equal(rec.received[2]!.toString('latin1'), `PROXY TCP4 127.0.0.1 127.0.0.1 ${r.localPort} ${port}\r\nhc`);
});

test('a connection without a valid PROXY header is reset at once; one that stalls inside it at HandshakeTimeoutMs', async (t) => {
  const rec = await recorder(t);
  const { port } = await listen(t, makeSpec([`127.0.0.1:${rec.port}`], { acceptProxyProtocol: true, handshakeTimeoutMs: 120_000 }));
  const { port: stalling } = await listen(t, makeSpec([`127.0.0.1:${rec.port}`], { acceptProxyProtocol: true, handshakeTimeoutMs: 600 }));
  const hello = readFileSync(new URL('./tls/fixtures/openssl-sni-alpn.bin', import.meta.url));
  const bad: [string, Uint8Array | string][] = [
    ['no header', 'GET / HTTP/1.1\r\n\r\n'],
    ['a ClientHello', hello],
    ['a malformed v1 line', 'PROXY TCP4 203.0.113.7\r\nhello'],
    ['a v2 header of an unknown version', Buffer.from([...V2_SIG, 0x31, 0x11, 0, 12, ...Array(12).fill(0)])],
    ['end of stream inside the header', 'PROXY TCP4 203.0.'],
  ];
  for (const [what, bytes] of bad) {
    // The handshake deadline is 120 s and the client waits 30 s: a reset it sees came from the parse.
    const r = await rawSend(port, bytes, '127.0.0.1', 30_000);
    assert.equal(r.error?.code, 'ECONNRESET', what);
  }
  const slow = await slowClient(stalling, Buffer.from(LB_V1), 100);
  assert.ok(slow.ms >= 500, `stalled header closed after ${slow.ms} ms`);
  assert.ok(slow.sent < LB_V1.length, `closed after ${slow.sent} of ${LB_V1.length} header bytes`);
  assert.equal(rec.received.length, 0, 'no target was ever connected');
});

test('passthrough behind a PROXY header: header and ClientHello in one chunk are split correctly and routed by SNI', async (t) => {
  const [a, dflt] = [await recorder(t, 'A'), await recorder(t, 'D')];
  const { port } = await listen(t, makeSpec([`127.0.0.1:${dflt.port}`], {
    acceptProxyProtocol: true,
    sendProxyProtocol: 'v1',
    tls: { mode: 'passthrough', certs: [] },
    routes: [{ sni: ['a.example.test'], alpn: [], targets: [targetSpec(`127.0.0.1:${a.port}`)] }],
  }));
  // openssl's ClientHello for a.example.test, right behind a v2 header, in a single write.
  const hello = readFileSync(new URL('./tls/fixtures/openssl-sni-alpn.bin', import.meta.url));
  const r = await rawSend(port, Buffer.concat([LB_V2(), hello]));
  assert.equal(r.error, undefined);
  assert.equal(r.reply.subarray(0, 2).toString(), 'A:');
  assert.deepEqual(a.received[0], Buffer.concat([Buffer.from(`${LB_V1}`), hello]), 'our v1 header, then the hello untouched');
  assert.equal(dflt.received.length, 0);
});

/** A TLS target behind PROXY v1: reads the header line, then does TLS on the rest (as haproxy's accept-proxy). */
async function startProxiedTlsTarget(t: T, cert: TestCert): Promise<{ port: number; headers: string[] }> {
  const headers: string[] = [];
  const server = net.createServer((raw) => {
    raw.on('error', () => {});
    let buf = Buffer.alloc(0);
    const onData = (d: Buffer) => {
      buf = Buffer.concat([buf, d]);
      const eol = buf.indexOf('\r\n');
      if (eol < 0) return;
      raw.removeListener('data', onData);
      raw.pause();
      headers.push(buf.subarray(0, eol + 2).toString('latin1'));
      raw.unshift(buf.subarray(eol + 2));
      const s = new tls.TLSSocket(raw, { isServer: true, cert: cert.pem, key: cert.key });
      s.on('error', () => {});
      s.on('data', (x: Buffer) => s.write(`T:${x}`));
      s.on('end', () => s.end());
    };
    raw.on('data', onData);
  });
  server.listen(0, '127.0.0.1');
  await once(server, 'listening');
  t.after(() => new Promise<void>((r) => { server.close(() => r()); }));
  return { port: (server.address() as net.AddressInfo).port, headers };
}

test('real TLS through PROXY headers both sides: passthrough to a PROXY-aware TLS target, and terminate forwarding plaintext', async (t) => {
  const dir = await tempDir(t);
  const cert = await makeCert(dir, 'a', ['a.example.test']);
  const target = await startProxiedTlsTarget(t, cert);
  const { port: pass } = await listen(t, makeSpec([`127.0.0.1:${target.port}`], { acceptProxyProtocol: true, sendProxyProtocol: 'v1', tls: { mode: 'passthrough', certs: [] } }));
  const viaLb = async (port: number, header: Buffer | string) => {
    const s = net.connect(port, '127.0.0.1');
    await once(s, 'connect');
    s.write(header);
    return tlsExchange(port, 'hi', { servername: 'a.example.test', socket: s });
  };
  const p = await viaLb(pass, LB_V2());
  assert.equal(p.reply, 'T:hi');
  assert.equal(p.peerCert?.fingerprint256, cert.fingerprint256, 'the target\'s certificate');
  assert.deepEqual(target.headers, [LB_V1]);

  const rec = await recorder(t);
  const { port: term } = await listen(t, makeSpec([`127.0.0.1:${rec.port}`], {
    acceptProxyProtocol: true, sendProxyProtocol: 'v1', tls: { mode: 'terminate', certs: [{ certPath: cert.certPath, keyPath: cert.keyPath }] },
  }));
  const r = await viaLb(term, LB_V1);
  assert.equal(r.reply, `R:${LB_V1}hi`);
  assert.equal(r.peerCert?.fingerprint256, cert.fingerprint256, 'the listener\'s certificate');
  assert.equal(rec.received[0]!.toString('latin1'), `${LB_V1}hi`);

  // Header and ClientHello in one chunk: TLS gets the bytes after the header and answers a ServerHello.
  const hello = readFileSync(new URL('./tls/fixtures/openssl-sni-alpn.bin', import.meta.url));
  const s = net.connect(term, '127.0.0.1');
  t.after(() => s.destroy());
  s.on('error', () => {});
  await once(s, 'connect');
  s.write(Buffer.concat([Buffer.from(LB_V1), hello]));
  const [first] = (await once(s, 'data')) as [Buffer];
  assert.deepEqual([...first.subarray(0, 2)], [0x16, 0x03], 'a TLS handshake record');
});
