import { test } from 'node:test';
import assert from 'node:assert/strict';
import { AdminServer, parseAdminAddr } from './admin-server.ts';

test('parseAdminAddr reads host:port, [v6]:port and :port', () => {
  const table: [raw: string, host: string, port: number][] = [
    ['127.0.0.1:9900', '127.0.0.1', 9900],
    [':0', '127.0.0.1', 0],
    ['0.0.0.0:80', '0.0.0.0', 80],
    ['[::1]:9900', '::1', 9900],
    ['localhost:65535', 'localhost', 65535],
    [' 127.0.0.1:1 ', '127.0.0.1', 1],
  ];
  for (const [raw, host, port] of table) assert.deepEqual(parseAdminAddr(raw), { host, port }, raw);
});

test('parseAdminAddr rejects anything else with ERR_ADMIN_ADDR_INVALID', () => {
  for (const raw of ['', '9900', '127.0.0.1', '127.0.0.1:', '127.0.0.1:65536', '::1:9900', '[::1]9900', 'host:port']) {
    assert.throws(() => parseAdminAddr(raw), (err: { code?: string; message?: string }) => err.code === 'ERR_ADMIN_ADDR_INVALID' && err.message!.includes(JSON.stringify(raw)), raw);
  }
});

test('AdminServer serves its routes as JSON, 404s unknown paths, 405s writes, 500s a throwing route (problem+json)', async (t) => {
  const server = new AdminServer({
    '/healthz': () => 'ok',
    '/apps': () => [{ name: 'a' }],
    '/boom': () => {
      throw Object.assign(new Error('broken'), { code: 'ERR_TEST' });
    },
  });
  const { host, port } = await server.listen({ host: '127.0.0.1', port: 0 });
  t.after(() => server.close());
  assert.equal(host, '127.0.0.1');
  const get = async (path: string, method = 'GET') => {
    const res = await fetch(`http://127.0.0.1:${port}${path}`, { method });
    return { status: res.status, type: res.headers.get('content-type'), body: await res.text() };
  };
  assert.deepEqual(await get('/healthz'), { status: 200, type: 'text/plain', body: 'ok\n' });
  assert.deepEqual(await get('/apps?x=1'), { status: 200, type: 'application/json', body: '[{"name":"a"}]\n' });
  const missing = await get('/nope');
  assert.equal(missing.status, 404);
  assert.match(missing.body, /\/healthz, \/apps/);
  assert.equal(missing.type, 'application/problem+json');
  const post = await get('/apps', 'POST');
  assert.equal(post.status, 405);
  assert.equal(JSON.parse(post.body).code, 'ERR_METHOD');
  const boom = await get('/boom');
  assert.equal(boom.status, 500);
  assert.deepEqual(JSON.parse(boom.body), { type: 'urn:fproxy:problem:ERR_TEST', title: 'Internal error', status: 500, detail: 'broken', code: 'ERR_TEST' });
});

test('AdminServer.listen reports a taken port as ERR_ADMIN_LISTEN', async (t) => {
  const first = new AdminServer({});
  const { port } = await first.listen({ host: '127.0.0.1', port: 0 });
  t.after(() => first.close());
  await assert.rejects(new AdminServer({}).listen({ host: '127.0.0.1', port }), (err: { code?: string; port?: number }) => err.code === 'ERR_ADMIN_LISTEN' && err.port === port);
});
