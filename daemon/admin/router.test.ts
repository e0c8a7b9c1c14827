// The admin router over a real AdminServer on a loopback port: params, body limit, auth, problem+json.
import { test } from 'node:test';
import type { TestContext } from 'node:test';
import assert from 'node:assert/strict';
import net from 'node:net';
import { AdminServer } from '../admin-server.ts';
import { AdminAuth, adminToken, isLoopbackHost } from './admin-auth.ts';
import { MAX_BODY_BYTES } from './contract.ts';
import { AdminError, HANDLED, Reply } from './router.ts';

const TOKEN = 'a-test-token-0123456789';

async function serve(t: TestContext, token: string | undefined): Promise<string> {
  const server = new AdminServer({ '/healthz': () => 'ok', '/slow': async () => ({ later: true }) }, {
    auth: new AdminAuth(token),
    routes: [
      { method: 'POST', path: '/echo/:name/:address', auth: true, handler: async (req) => ({ params: req.params, body: await req.json() }) },
      { method: 'PUT', path: '/size', auth: true, handler: async (req) => ({ bytes: (await req.body()).length }) },
      { method: 'DELETE', path: '/gone/:name', auth: true, handler: (req) => { throw new AdminError(404, 'ERR_APP_NOT_FOUND', 'No such app', `No app "${req.params.name}"`); } },
      { method: 'GET', path: '/created', handler: () => new Reply({ ok: true }, 201, { etag: '"x"' }) },
      { method: 'GET', path: '/html', handler: () => new Reply('<p>hi</p>', 200, { 'content-type': 'text/html; charset=utf-8' }) },
      { method: 'GET', path: '/events', handler: (req) => {
        req.res.writeHead(200, { 'content-type': 'text/event-stream' });
        req.res.end('data: 1\n\n');
        return HANDLED;
      } },
    ],
  });
  const { port } = await server.listen({ host: '127.0.0.1', port: 0 });
  t.after(() => server.close());
  return `http://127.0.0.1:${port}`;
}

const auth = { authorization: `Bearer ${TOKEN}` };

test('routes match :params (URL-decoded), run async handlers and answer JSON or a Reply', async (t) => {
  const base = await serve(t, TOKEN);
  const res = await fetch(`${base}/echo/web/${encodeURIComponent('[::1]:9000')}`, { method: 'POST', headers: auth, body: '{"a": 1}' });
  assert.equal(res.status, 200);
  assert.deepEqual(await res.json(), { params: { name: 'web', address: '[::1]:9000' }, body: { a: 1 } });
  assert.deepEqual(await (await fetch(`${base}/slow`)).json(), { later: true });
  const created = await fetch(`${base}/created`);
  assert.equal(created.status, 201);
  assert.equal(created.headers.get('etag'), '"x"');
  const html = await fetch(`${base}/html`);
  assert.deepEqual([html.headers.get('content-type'), await html.text()], ['text/html; charset=utf-8', '<p>hi</p>']);
  const events = await fetch(`${base}/events`);
  assert.deepEqual([events.headers.get('content-type'), await events.text()], ['text/event-stream', 'data: 1\n\n']);
});

test('errors are problem+json: a thrown AdminError, invalid JSON with line and column, bad URL encoding, 405 with Allow', async (t) => {
  const base = await serve(t, TOKEN);
  const gone = await fetch(`${base}/gone/nope`, { method: 'DELETE', headers: auth });
  assert.equal(gone.status, 404);
  assert.equal(gone.headers.get('content-type'), 'application/problem+json');
  assert.deepEqual(await gone.json(), { type: 'urn:fproxy:problem:ERR_APP_NOT_FOUND', title: 'No such app', status: 404, detail: 'No app "nope"', code: 'ERR_APP_NOT_FOUND' });
  const bad = await fetch(`${base}/echo/a/b`, { method: 'POST', headers: auth, body: '{\n  "a": 1,\n}' });
  assert.equal(bad.status, 400);
  const problem = await bad.json() as { code: string; issues: { line: number; column: number; message: string }[] };
  assert.equal(problem.code, 'ERR_JSON');
  assert.equal(problem.issues[0]!.line, 3);
  assert.match(problem.issues[0]!.message, /line 3, column 1/);
  const enc = await fetch(`${base}/echo/a/%E0%A4%A`, { method: 'POST', headers: auth, body: '{}' });
  assert.equal(enc.status, 400);
  assert.equal((await enc.json() as { code: string }).code, 'ERR_BAD_PATH');
  const wrong = await fetch(`${base}/size`, { method: 'GET' });
  assert.equal(wrong.status, 405);
  assert.equal(wrong.headers.get('allow'), 'PUT');
});

test('writes need the bearer token: none configured → 403 saying how to enable; missing or wrong → 401; reads stay open', async (t) => {
  const open = await serve(t, undefined);
  const disabled = await fetch(`${open}/size`, { method: 'PUT', headers: auth, body: 'x' });
  assert.equal(disabled.status, 403);
  assert.match((await disabled.json() as { detail: string }).detail, /FPROXY_ADMIN_TOKEN/);
  assert.equal((await fetch(`${open}/healthz`)).status, 200);
  const base = await serve(t, TOKEN);
  for (const headers of [{}, { authorization: 'Bearer wrong-token-0123456789' }, { authorization: `Basic ${TOKEN}` }, { authorization: `Bearer ${TOKEN}x` }]) {
    const res = await fetch(`${base}/size`, { method: 'PUT', headers, body: 'x' });
    assert.equal(res.status, 401, JSON.stringify(headers));
    assert.equal(res.headers.get('www-authenticate'), 'Bearer realm="fproxy"');
    assert.equal((await res.json() as { code: string }).code, 'ERR_UNAUTHORIZED');
  }
  assert.equal((await fetch(`${base}/size`, { method: 'PUT', headers: auth, body: 'x' })).status, 200);
});

test('a body over 1 MiB is 413: a declared Content-Length before any of it is read, a chunked one when it passes the limit', async (t) => {
  const base = await serve(t, TOKEN);
  const exact = await fetch(`${base}/size`, { method: 'PUT', headers: auth, body: Buffer.alloc(MAX_BODY_BYTES, 0x20) });
  assert.deepEqual(await exact.json(), { bytes: MAX_BODY_BYTES });
  // Declared 100 MiB, only the headers sent: the 413 comes without the body.
  const { port } = new URL(base);
  const sock = net.connect(Number(port), '127.0.0.1');
  t.after(() => sock.destroy());
  sock.write(`PUT /size HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer ${TOKEN}\r\nContent-Length: ${100 * 1024 * 1024}\r\n\r\n`);
  let text = '';
  sock.on('data', (c: Buffer) => (text += c.toString()));
  await new Promise((resolve) => sock.once('close', resolve));
  assert.match(text, /^HTTP\/1\.1 413 /);
  assert.match(text, /ERR_BODY_TOO_LARGE/);
  // Chunked (no Content-Length): cut off once over the limit.
  const stream = new ReadableStream({
    start(c) {
      for (let i = 0; i < 5; i++) c.enqueue(new Uint8Array(512 * 1024));
      c.close();
    },
  });
  const chunked = await fetch(`${base}/size`, { method: 'PUT', headers: auth, body: stream, duplex: 'half' } as RequestInit).catch((err: Error) => err);
  if (chunked instanceof Error) assert.fail(`fetch failed: ${chunked.message}`);
  assert.equal(chunked.status, 413);
});

test('adminToken reads FPROXY_ADMIN_TOKEN or FPROXY_ADMIN_TOKEN_FILE and rejects a short one', () => {
  assert.equal(adminToken({}), undefined);
  assert.equal(adminToken({ FPROXY_ADMIN_TOKEN: ` ${TOKEN}\n` }), TOKEN);
  assert.throws(() => adminToken({ FPROXY_ADMIN_TOKEN: 'short' }), (err: { code?: string }) => err.code === 'ERR_ADMIN_TOKEN');
  assert.throws(() => adminToken({ FPROXY_ADMIN_TOKEN_FILE: '/nonexistent/token' }), (err: { code?: string; message?: string }) => err.code === 'ERR_ADMIN_TOKEN' && /nonexistent/.test(err.message!));
  for (const h of ['127.0.0.1', '127.1.2.3', '::1', 'localhost']) assert.ok(isLoopbackHost(h), h);
  for (const h of ['0.0.0.0', '::', '10.0.0.1', '192.168.1.1']) assert.ok(!isLoopbackHost(h), h);
});

test('a client that sends its request too slowly gets 408 and the connection closed (request timeout 10 s)', async (t) => {
  const base = await serve(t, TOKEN);
  const { port } = new URL(base);
  const sock = net.connect(Number(port), '127.0.0.1');
  t.after(() => sock.destroy());
  let text = '';
  sock.on('data', (c: Buffer) => (text += c.toString()));
  sock.on('error', () => {});
  // Headers complete, then a body that never comes.
  sock.write(`PUT /size HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer ${TOKEN}\r\nContent-Length: 10\r\n\r\nabc`);
  const startedAt = Date.now();
  await new Promise((resolve) => sock.once('close', resolve));
  t.diagnostic(`closed after ${Date.now() - startedAt} ms`);
  assert.match(text, /^HTTP\/1\.1 408 /);
  assert.ok(Date.now() - startedAt >= 9_000, 'not before the timeout');
  // The server still answers others.
  assert.equal((await fetch(`${base}/healthz`)).status, 200);
});
