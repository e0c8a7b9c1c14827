// The admin API on the real daemon (child process, real listeners, loopback sockets): writes go
// through the config file and the normal rollout; runtime drains; auth; bad input.
import { test } from 'node:test';
import type { TestContext } from 'node:test';
import assert from 'node:assert/strict';
import { readFile } from 'node:fs/promises';
import net from 'node:net';
import { checkBalancer } from '../../ftest/balancer.ts';
import { startEchoServers } from '../../ftest/echo-server.ts';
import { appConfig, startTestDaemon, waitFor } from '../testing.ts';
import type { TestDaemon } from '../testing.ts';
import { ApplyResponseSchema, ProblemSchema } from './contract.ts';
import { call, TOKEN } from './testing-admin.ts';

async function echoServers(t: TestContext, n: number): Promise<number[]> {
  const servers = await startEchoServers({ ports: Array.from({ length: n }, () => 0), host: '127.0.0.1', tag: true });
  t.after(() => servers.close());
  return [...servers.ports];
}

async function configTargets(d: TestDaemon, app = 'web'): Promise<unknown[]> {
  const doc = JSON.parse(await readFile(d.configPath, 'utf8')) as { Apps: { Name: string; Targets: unknown[] }[] };
  return doc.Apps.find((a) => a.Name === app)!.Targets;
}

const target = (port: number): string => `127.0.0.1:${port}`;

async function webDaemon(t: TestContext, targets: number[], env: Record<string, string> = { FPROXY_ADMIN_TOKEN: TOKEN }): Promise<{ d: TestDaemon; port: number }> {
  const d = await startTestDaemon(t, { $schema: './config.schema.json', Apps: [appConfig('web', [0], targets)] }, { env });
  const [port] = await d.ports('web');
  await d.running('web');
  return { d, port: port! };
}

test('POST /apps/web/targets: applied once the new generation serves, ftest balancer reaches the target, the file has it; DELETE takes it out of both', async (t) => {
  const [a, b] = await echoServers(t, 2);
  const { d, port } = await webDaemon(t, [a!]);
  const before = (await d.app('web'))!.generation;

  const startedAt = Date.now();
  const added = await call(d, 'POST', '/apps/web/targets', { body: { Address: target(b!) } });
  assert.equal(added.status, 200, added.text);
  const ok = ApplyResponseSchema.parse(added.body);
  assert.ok(ok.apps.web!.generation > before, `a new generation: ${added.text}`);
  // Applied means the new generation serves: the first balancer run already reaches both (the
  // deadline only absorbs a slow machine; the figure is logged).
  const seen = await waitFor(async () => {
    const report = await checkBalancer({ target: { host: '127.0.0.1', port, label: `127.0.0.1:${port}` }, count: 4 });
    return report.counts[String(b)] !== undefined ? report : undefined;
  }, 10_000, 'the balancer reaching the new target');
  t.diagnostic(`new target reached ${Date.now() - startedAt} ms after the POST was sent; counts ${JSON.stringify(seen.counts)}`);
  assert.deepEqual(await configTargets(d), [target(a!), target(b!)]);
  const text = await readFile(d.configPath, 'utf8');
  assert.ok(text.startsWith('{\n  "$schema": "./config.schema.json",\n  "Apps": [\n    {\n      "Name": "web",'), text);

  const again = await call(d, 'POST', '/apps/web/targets', { body: { Address: target(b!) } });
  assert.equal(again.status, 409);
  assert.equal((again.body as { code: string }).code, 'ERR_TARGET_EXISTS');

  const removed = await call(d, 'DELETE', `/apps/web/targets/${encodeURIComponent(target(b!))}`);
  assert.equal(removed.status, 200, removed.text);
  const report = await checkBalancer({ target: { host: '127.0.0.1', port, label: '' }, count: 6 });
  assert.deepEqual(Object.keys(report.counts), [String(a)], JSON.stringify(report));
  assert.deepEqual(await configTargets(d), [target(a!)]);
});

test('writes without the token: none configured → 403 saying how to enable; missing or wrong → 401; the file untouched', async (t) => {
  const [a, b] = await echoServers(t, 2);
  const open = await webDaemon(t, [a!], {});
  const original = await readFile(open.d.configPath, 'utf8');
  const disabled = await call(open.d, 'POST', '/apps/web/targets', { body: { Address: target(b!) } });
  assert.equal(disabled.status, 403);
  assert.match(ProblemSchema.parse(disabled.body).detail, /FPROXY_ADMIN_TOKEN/);
  assert.equal((await call(open.d, 'GET', '/config', { token: null })).status, 200, 'reads stay open');
  assert.equal(await readFile(open.d.configPath, 'utf8'), original);

  const { d } = await webDaemon(t, [a!]);
  const before = await readFile(d.configPath, 'utf8');
  for (const token of [null, 'wrong-token-0123456789abcdef']) {
    const res = await call(d, 'POST', '/apps/web/targets', { body: { Address: target(b!) }, token });
    assert.equal(res.status, 401, String(token));
    assert.equal(ProblemSchema.parse(res.body).code, 'ERR_UNAUTHORIZED');
  }
  assert.equal(await readFile(d.configPath, 'utf8'), before);
});

test('20 concurrent POST …/targets with distinct targets all end up in the config', async (t) => {
  const [a] = await echoServers(t, 1);
  const { d } = await webDaemon(t, [a!]);
  const extra = Array.from({ length: 20 }, (_, i) => `127.0.0.1:${40000 + i}`);
  const results = await Promise.all(extra.map((address) => call(d, 'POST', '/apps/web/targets', { body: { Address: address } })));
  assert.deepEqual(results.map((r) => r.status), extra.map(() => 200), results.map((r) => r.text).join('\n'));
  assert.deepEqual(new Set(await configTargets(d)), new Set([target(a!), ...extra]));
  assert.deepEqual(new Set((await d.app('web'))!.targets), new Set([target(a!), ...extra]));
});

test('GET /config has ETag "<hash>"; a write with a stale If-Match is 412 and changes nothing, the current one succeeds', async (t) => {
  const [a, b] = await echoServers(t, 2);
  const { d } = await webDaemon(t, [a!]);
  const got = await call(d, 'GET', '/config', { token: null });
  const etag = got.headers.get('etag')!;
  assert.match(etag, /^"[0-9a-f]{64}"$/);
  assert.equal(etag, `"${(await d.status()).config.hash}"`);
  assert.deepEqual(got.body, JSON.parse(await readFile(d.configPath, 'utf8')));
  const stale = await call(d, 'POST', '/apps/web/targets', { body: { Address: target(b!) }, headers: { 'if-match': '"0000"' } });
  assert.equal(stale.status, 412);
  assert.equal(stale.headers.get('etag'), etag);
  assert.deepEqual(await configTargets(d), [target(a!)]);
  const fresh = await call(d, 'POST', '/apps/web/targets', { body: { Address: target(b!) }, headers: { 'if-match': etag } });
  assert.equal(fresh.status, 200, fresh.text);
  assert.equal(`"${(fresh.body as { hash: string }).hash}"`, (await call(d, 'GET', '/config')).headers.get('etag'));
});

test('PUT /apps/{name} with an invalid app: 400 listing every issue, nothing changed; a valid one starts the app', async (t) => {
  const [a] = await echoServers(t, 1);
  const { d } = await webDaemon(t, [a!]);
  const before = await readFile(d.configPath, 'utf8');
  const bad = await call(d, 'PUT', '/apps/other', { body: { Ports: [70000], Targets: ['nope'], Workers: 0, Bogus: 1 } });
  assert.equal(bad.status, 400, bad.text);
  assert.equal(bad.headers.get('content-type'), 'application/problem+json');
  const problem = ProblemSchema.parse(bad.body);
  assert.equal(problem.code, 'ERR_CONFIG_INVALID');
  const paths = problem.issues!.map((i) => i.path);
  for (const p of ['Apps[1].Ports[0]', 'Apps[1].Targets[0]', 'Apps[1].Workers', 'Apps[1].Bogus']) assert.ok(paths.includes(p), `${p} in ${JSON.stringify(problem.issues)}`);
  assert.equal(await readFile(d.configPath, 'utf8'), before);
  assert.deepEqual((await d.apps()).map((x) => x.name), ['web']);

  const invalidJson = await call(d, 'PUT', '/apps/other', { body: '{"Ports": [0],\n "Targets": ["x:1"],,}' });
  assert.equal(invalidJson.status, 400);
  assert.match(ProblemSchema.parse(invalidJson.body).detail, /line 2, column/);
  assert.equal((await call(d, 'DELETE', '/apps/nope')).status, 404);
  assert.equal((await call(d, 'POST', '/apps/web/targets', { body: { Address: 'not-an-address' } })).status, 400);

  const good = await call(d, 'PUT', '/apps/other', { body: { Ports: [0], Targets: [target(a!)], Workers: 1 } });
  assert.equal(good.status, 200, good.text);
  assert.ok(ApplyResponseSchema.parse(good.body).apps.other!.generation >= 1);
  await d.running('other');
  const gone = await call(d, 'DELETE', '/apps/other');
  assert.equal(gone.status, 200, gone.text);
  assert.deepEqual((gone.body as { stopped: string[] }).stopped, ['other']);
});

test('a rollout that fails is 409 with the cause; the file is restored and the app set is as before', async (t) => {
  const [a] = await echoServers(t, 1);
  const { d } = await webDaemon(t, [a!]);
  const before = await readFile(d.configPath, 'utf8');
  // A port another process holds: the new app's listener cannot bind, so it never becomes ready.
  const taken = net.createServer().listen(0, '127.0.0.1');
  await new Promise((r) => taken.once('listening', r));
  t.after(() => new Promise<void>((r) => taken.close(() => r())));
  const port = (taken.address() as net.AddressInfo).port;
  const res = await call(d, 'PUT', '/apps/clash', { body: { Ports: [port], Listen: ['127.0.0.1'], Targets: [target(a!)], Workers: 1 } });
  assert.equal(res.status, 409, res.text);
  const problem = ProblemSchema.parse(res.body);
  assert.equal(problem.code, 'ERR_ROLLOUT_FAILED');
  assert.match(problem.detail, /clash/);
  assert.match(problem.detail, /EADDRINUSE|bind/i);
  assert.equal(await readFile(d.configPath, 'utf8'), before);
  await waitFor(async () => (await d.apps()).every((x) => x.name === 'web'), 20_000, 'the failed app gone');
  await d.running('web');
});

test('drain: the target gets no new connections while an open one keeps streaming; shown as "drain"; kept across a rollout; not in the file; enable undoes it', async (t) => {
  const [a, b] = await echoServers(t, 2);
  const { d, port } = await webDaemon(t, [a!, b!]);
  const before = await readFile(d.configPath, 'utf8');
  // An open connection to b (round-robin over two: one of two connections lands there).
  const open = await openOn(port, String(b));
  t.after(() => open.destroy());

  const drained = await call(d, 'POST', `/apps/web/targets/${encodeURIComponent(target(b!))}/drain`);
  assert.equal(drained.status, 200, drained.text);
  assert.deepEqual(drained.body, { app: 'web', target: target(b!), drain: true });
  await waitFor(async () => (await d.app('web'))!.health.find((h) => h.target === target(b!))?.state === 'drain', 10_000, 'b shown as drain');
  const during = await checkBalancer({ target: { host: '127.0.0.1', port, label: '' }, count: 8 });
  assert.deepEqual(Object.keys(during.counts), [String(a)], JSON.stringify(during));
  assert.equal(await echoOnce(open, 'still-here'), 'still-here', 'the open connection keeps streaming');
  assert.equal(await readFile(d.configPath, 'utf8'), before, 'a drain is not written to the file');

  // A rollout of the app (an unrelated target added) keeps the drain.
  const [c] = await echoServers(t, 1);
  assert.equal((await call(d, 'POST', '/apps/web/targets', { body: { Address: target(c!) } })).status, 200);
  const after = await checkBalancer({ target: { host: '127.0.0.1', port, label: '' }, count: 8 });
  assert.ok(!(String(b) in after.counts), JSON.stringify(after));
  assert.equal((await d.app('web'))!.health.find((h) => h.target === target(b!))?.state, 'drain');

  const enabled = await call(d, 'POST', `/apps/web/targets/${encodeURIComponent(target(b!))}/enable`);
  assert.deepEqual(enabled.body, { app: 'web', target: target(b!), drain: false });
  await waitFor(async () => String(b) in (await checkBalancer({ target: { host: '127.0.0.1', port, label: '' }, count: 6 })).counts, 10_000, 'b in rotation again');
  assert.equal((await call(d, 'POST', '/apps/web/targets/127.0.0.1%3A1/drain')).status, 404);
  assert.equal((await call(d, 'POST', `/apps/nope/targets/${encodeURIComponent(target(b!))}/drain`)).status, 404);
});

test('POST /reload re-reads the config (as SIGHUP)', async (t) => {
  const [a, b] = await echoServers(t, 2);
  const { d } = await webDaemon(t, [a!]);
  await d.writeConfig({ Apps: [appConfig('web', [0], [a!, b!])] }, 'in-place');
  const res = await call(d, 'POST', '/reload');
  assert.equal(res.status, 200, res.text);
  assert.equal((res.body as { reloaded: boolean }).reloaded, true);
  await waitFor(async () => (await d.app('web'))!.targets.length === 2, 20_000, 'both targets after the reload');
});

test('the admin address on a non-loopback interface without a token: refused at start, one clear message, exit 1', async (t) => {
  const d = await startTestDaemon(t, { Apps: [] }, { env: { FPROXY_ADMIN_ADDR: '0.0.0.0:0' }, noWait: true });
  const { code } = await d.exited;
  assert.equal(code, 1);
  assert.match(d.stderr, /^fproxy: Refusing to serve the admin API on 0\.0\.0\.0:0 \(not loopback\) without a token: set FPROXY_ADMIN_TOKEN/);
  assert.equal(d.stderr.trim().split('\n').length, 1, d.stderr);
});

test('a burst of 1,000 bad requests: every one answered 4xx, the daemon keeps serving, its memory stays flat', async (t) => {
  const [a] = await echoServers(t, 1);
  const { d, port } = await webDaemon(t, [a!]);
  const rss = async (): Promise<number> => Number(/VmRSS:\s+(\d+)/.exec(await readFile(`/proc/${d.pid}/status`, 'utf8'))![1]) * 1024;
  const kinds: [string, string, unknown, string | null][] = [
    ['POST', '/apps/web/targets', '{"Address": ', TOKEN],
    ['POST', '/apps/web/targets', { Address: 'garbage' }, TOKEN],
    ['PUT', '/apps/x', { Ports: 'no' }, TOKEN],
    ['DELETE', '/apps/nope', undefined, TOKEN],
    ['POST', '/apps/web/targets', { Address: '127.0.0.1:1' }, 'wrong-token-0123456789abcdef'],
    ['PUT', '/config', 'x'.repeat(2 * 1024 * 1024), TOKEN],
    ['GET', '/nope', undefined, null],
  ];
  const failed: string[] = [];
  const burst = async (n: number): Promise<number[]> => {
    const statuses: number[] = [];
    for (let i = 0; i < n; i += 50) {
      statuses.push(...(await Promise.all(Array.from({ length: Math.min(50, n - i) }, (_, k) => {
        const [method, path, body, token] = kinds[(i + k) % kinds.length]!;
        return call(d, method, path, { body, token }).then((r) => r.status, (err: Error) => {
          failed.push(`${method} ${path}: ${err.message}${err.cause instanceof Error ? ` (${err.cause.message})` : ''}`);
          return 0;
        });
      }))));
    }
    return statuses;
  };
  await burst(200); // warm-up: JIT, buffers
  failed.length = 0;
  const before = await rss();
  const statuses = await burst(1000);
  const after = await rss();
  t.diagnostic(`daemon RSS before ${(before / 2 ** 20).toFixed(1)} MiB, after 1,000 bad requests ${(after / 2 ** 20).toFixed(1)} MiB`);
  assert.ok(statuses.every((s) => s >= 400 && s < 500), `statuses: ${[...new Set(statuses)].join(', ')}; failed: ${[...new Set(failed)].join('; ')}`);
  assert.ok(after - before < 40 * 2 ** 20, `RSS grew ${((after - before) / 2 ** 20).toFixed(1)} MiB`);
  const report = await checkBalancer({ target: { host: '127.0.0.1', port, label: '' }, count: 4 });
  assert.deepEqual(report.failures, []);
  assert.equal((await call(d, 'GET', '/healthz', { token: null })).text, 'ok\n');
  assert.equal(await readFile(d.configPath, 'utf8'), JSON.stringify({ $schema: './config.schema.json', Apps: [appConfig('web', [0], [a!])] }, null, 2));
});

/** A connection through `port` answered by the echo tagged `tag` (reconnects until one lands there). */
async function openOn(port: number, tag: string): Promise<net.Socket> {
  return waitFor(async () => {
    const sock = net.connect(port, '127.0.0.1');
    sock.on('error', () => {});
    const reply = await echoOnceRaw(sock, 'hello');
    if (reply === `${tag}:hello`) return sock;
    sock.destroy();
    return undefined;
  }, 10_000, `a connection to ${tag}`);
}

function echoOnceRaw(sock: net.Socket, text: string): Promise<string> {
  return new Promise((resolve) => {
    let got = '';
    const onData = (c: Buffer): void => {
      got += c.toString();
      if (got.endsWith(text)) {
        sock.off('data', onData);
        resolve(got);
      }
    };
    sock.on('data', onData);
    sock.once('close', () => resolve(got));
    sock.write(text);
  });
}

async function echoOnce(sock: net.Socket, text: string): Promise<string> {
  return echoOnceRaw(sock, text);
}
