// GET /openapi.json against the real daemon: it lists every route the daemon serves, and real
// responses of every operation match the schemas it declares (the contract's zod schemas, from
// which the document is generated).
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { startEchoServers } from '../../ftest/echo-server.ts';
import { appConfig, startTestDaemon } from '../testing.ts';
import { call, TOKEN } from './testing-admin.ts';
import { ProblemSchema } from './contract.ts';
import { OPERATIONS } from './openapi.ts';

test('GET /openapi.json is OpenAPI 3.1, lists every route the daemon serves, and every operation\'s real responses match its schemas', async (t) => {
  const echo = await startEchoServers({ ports: [0, 0], host: '127.0.0.1', tag: true });
  t.after(() => echo.close());
  const [a, b] = echo.ports.map((p) => `127.0.0.1:${p}`);
  const d = await startTestDaemon(t, { Apps: [appConfig('web', [0], [a!])] }, { env: { FPROXY_ADMIN_TOKEN: TOKEN } });
  await d.running('web');

  const doc = (await call(d, 'GET', '/openapi.json', { token: null })).body as { openapi: string; paths: Record<string, Record<string, unknown>> };
  assert.equal(doc.openapi, '3.1.0');
  const documented = Object.entries(doc.paths).flatMap(([path, ops]) => Object.keys(ops).map((m) => `${m.toUpperCase()} ${path.replace(/\{(\w+)\}/g, ':$1')}`));
  const notFound = ProblemSchema.parse((await call(d, 'GET', '/no-such-route', { token: null })).body);
  assert.deepEqual(new Set(documented), new Set(notFound.routes), 'the document and the daemon\'s routes are the same set');

  // One real request per operation (in an order that leaves each valid), checked against its declared 2xx schema.
  const enc = encodeURIComponent(b!);
  const requests: [method: string, path: string, body?: unknown][] = [
    ['GET', '/healthz'], ['GET', '/'], ['GET', '/dashboard.js'], ['GET', '/metrics'], ['GET', '/stats'], ['GET', '/apps'], ['GET', '/status'], ['GET', '/config'], ['GET', '/openapi.json'],
    ['POST', '/apps/{name}/targets', { Address: b }],
    ['POST', '/apps/{name}/targets/{address}/drain'], ['POST', '/apps/{name}/targets/{address}/enable'],
    ['DELETE', '/apps/{name}/targets/{address}'],
    ['PUT', '/apps/{name}', { Ports: [0], Targets: [a], Workers: 1 }],
    ['PUT', '/config', { Apps: [appConfig('web', [0], [a!]), appConfig('two', [0], [a!])] }],
    ['DELETE', '/apps/{name}'],
    ['POST', '/reload'],
  ];
  const covered = new Set<string>();
  for (const [method, template, body] of requests) {
    const name = template === '/apps/{name}' ? 'two' : 'web';
    const path = template.replace('{name}', name).replace('{address}', enc);
    const res = await call(d, method, path, body === undefined ? {} : { body });
    const op = OPERATIONS.find((o) => o.method === method.toLowerCase() && o.path === template)!;
    const schema = op.responses[res.status];
    assert.ok(schema !== undefined, `${method} ${path}: status ${res.status} is not declared: ${res.text}`);
    if (typeof schema === 'string' && schema.includes('/')) assert.ok(res.headers.get('content-type')?.startsWith(schema), `${path}: ${res.headers.get('content-type')}`);
    else if (schema === 'problem') assert.fail(`${method} ${path}: ${res.text}`);
    else {
      const parsed = (schema as import('zod').ZodType).safeParse(res.body);
      assert.ok(parsed.success, `${method} ${path}: ${JSON.stringify(parsed.error?.issues)}`);
    }
    covered.add(`${op.method} ${op.path}`);
  }
  assert.deepEqual(covered, new Set(OPERATIONS.map((o) => `${o.method} ${o.path}`)), 'every operation exercised');

  // Declared error statuses answer problem+json that matches the Problem schema.
  for (const [method, path, body, token] of [['POST', '/apps/web/targets', { Address: 'bad' }, TOKEN], ['DELETE', '/apps/nope', undefined, TOKEN], ['PUT', '/config', {}, null]] as const) {
    const res = await call(d, method, path, { ...(body === undefined ? {} : { body }), token });
    assert.ok(ProblemSchema.safeParse(res.body).success, res.text);
    assert.equal(res.headers.get('content-type'), 'application/problem+json');
    const op = OPERATIONS.find((o) => o.method === method.toLowerCase() && path.startsWith(o.path.split('{')[0]!.replace(/\/$/, '')) && o.responses[res.status] === 'problem');
    assert.ok(op, `${method} ${path} ${res.status} declared`);
  }
});
