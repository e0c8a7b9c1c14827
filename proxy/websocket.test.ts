// WebSocket sessions (the `ws` package on both ends) through a plain TCP app and through a
// TLS-terminating app: upgrade, messages both ways (text and a large binary one), server pushes,
// and the closing handshake.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { once } from 'node:events';
import { randomBytes } from 'node:crypto';
import type { AddressInfo } from 'node:net';
import { WebSocket, WebSocketServer, type ClientOptions, type RawData } from 'ws';
import { listen, makeCert, makeSpec, tempDir, waitFor } from './testing.ts';

type T = { after: (fn: () => unknown) => void };

/** Echoes every message; on "push" sends three messages of its own; records close codes. */
async function startWsTarget(t: T): Promise<{ port: number; closes: number[]; paths: string[] }> {
  const wss = new WebSocketServer({ port: 0, host: '127.0.0.1' });
  await once(wss, 'listening');
  const closes: number[] = [];
  const paths: string[] = [];
  wss.on('connection', (ws, req) => {
    paths.push(req.url ?? '');
    ws.on('message', (data: RawData, isBinary: boolean) => {
      if (!isBinary && String(data) === 'push') for (let i = 0; i < 3; i++) ws.send(`pushed ${i}`);
      else ws.send(data, { binary: isBinary });
    });
    ws.on('close', (code) => closes.push(code));
  });
  t.after(() => new Promise<void>((r) => {
    for (const c of wss.clients) c.terminate();
    wss.close(() => r());
  }));
  return { port: (wss.address() as AddressInfo).port, closes, paths };
}


/** Open, talk, close cleanly; asserts along the way. */
async function conversation(ws: WebSocket, target: { closes: number[]; paths: string[] }): Promise<void> {
  const inbox: { data: Buffer; binary: boolean }[] = [];
  ws.on('message', (data: RawData, binary: boolean) => inbox.push({ data: Buffer.isBuffer(data) ? data : Buffer.from(data as ArrayBuffer), binary }));
  await once(ws, 'open');

  ws.send('hello');
  await waitFor(() => inbox.length === 1, 20_000, 'text echo');
  assert.deepEqual([inbox[0]!.data.toString(), inbox[0]!.binary], ['hello', false]);

  const big = randomBytes(512 * 1024);
  ws.send(big);
  await waitFor(() => inbox.length === 2, 20_000, 'binary echo');
  assert.ok(inbox[1]!.binary);
  assert.ok(inbox[1]!.data.equals(big), 'the 512 KiB binary message came back intact');

  ws.send('push');
  await waitFor(() => inbox.length === 5, 20_000, 'server pushes');
  assert.deepEqual(inbox.slice(2).map((m) => m.data.toString()), ['pushed 0', 'pushed 1', 'pushed 2']);

  ws.close(1000, 'bye');
  const [code, reason] = (await once(ws, 'close')) as [number, Buffer];
  assert.equal(code, 1000);
  assert.equal(String(reason), 'bye');
  await waitFor(() => target.closes.length === 1, 20_000, 'target saw the close');
  assert.deepEqual(target.closes, [1000]);
  assert.deepEqual(target.paths, ['/chat?room=1']);
}

test('a WebSocket session works through a plain TCP app', async (t) => {
  const target = await startWsTarget(t);
  const { port } = await listen(t, makeSpec([`127.0.0.1:${target.port}`]));
  const ws = new WebSocket(`ws://127.0.0.1:${port}/chat?room=1`);
  t.after(() => ws.terminate());
  await conversation(ws, target);
});

test('a wss:// session works through a TLS-terminating app (the client verifies the listener\'s certificate)', async (t) => {
  const target = await startWsTarget(t);
  const dir = await tempDir(t);
  const cert = await makeCert(dir, 'ws', ['ws.example.test']);
  const { port } = await listen(t, makeSpec([`127.0.0.1:${target.port}`], {
    tls: { mode: 'terminate', certs: [{ certPath: cert.certPath, keyPath: cert.keyPath }] },
  }));
  // Verified for real: the test certificate is the only CA, and its SAN must match the SNI (ws hands
  // `servername` on to tls.connect; its types just do not list it).
  const tlsOptions = (servername: string): ClientOptions => ({ ca: cert.pem, servername }) as ClientOptions;
  const wrongName = new WebSocket(`wss://127.0.0.1:${port}/chat?room=1`, tlsOptions('other.example.test'));
  const [err] = (await once(wrongName, 'error')) as [NodeJS.ErrnoException];
  assert.equal(err.code, 'ERR_TLS_CERT_ALTNAME_INVALID');

  const ws = new WebSocket(`wss://127.0.0.1:${port}/chat?room=1`, tlsOptions('ws.example.test'));
  t.after(() => ws.terminate());
  await conversation(ws, target);
});
