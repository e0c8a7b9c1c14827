// Failures a user reads: an app that cannot bind says so once per attempt (generation, attempt,
// next retry), /apps tells the current condition apart from history, a deleted config shows as
// missing, and routes-only apps show their pools.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import net from 'node:net';
import { once } from 'node:events';
import { rm } from 'node:fs/promises';
import { exchange, startEcho } from '../proxy/testing.ts';
import { appConfig, waitFor as poll, startTestDaemon } from './testing.ts';

test('an app whose port another program holds: one plain line per attempt, attempted generation in /apps, history kept after recovery', async (t) => {
  const echo = await startEcho('one');
  t.after(() => echo.close());
  // The squatter takes a free port first and holds it (no reusePort): the app's bind must fail.
  const squatter = net.createServer().listen({ port: 0, host: '::', ipv6Only: false });
  await once(squatter, 'listening');
  const port = (squatter.address() as net.AddressInfo).port;
  t.after(() => new Promise<void>((r) => (squatter.listening ? squatter.close(() => r()) : r())));

  const d = await startTestDaemon(t, { Apps: [appConfig('clash', [port], [echo.port])] });
  const failures = () => d.logs.filter((l) => l.proc === 'daemon' && l.app === 'clash' && typeof l.attempt === 'number');
  await poll(() => failures().length >= 3, 10_000, 'three start attempts');
  const [first, second, third] = failures();
  assert.deepEqual([first!.attempt, second!.attempt, third!.attempt], [1, 2, 3]);
  assert.deepEqual([first!.gen, second!.gen, third!.gen], [1, 2, 3], 'each attempt names its generation');
  assert.deepEqual([first!.retryInMs, second!.retryInMs, third!.retryInMs], [100, 200, 400]);
  // The schedule is stated once, on the first line; later lines do not repeat it.
  assert.match(first!.msg!, /100 ms doubling up to 30 s/);
  assert.doesNotMatch(second!.msg!, /doubling/);
  for (const line of [first!, second!, third!]) {
    assert.equal(line.code, 'ERR_BIND');
    assert.equal(typeof line.err, 'string', 'the message, not an error object with a stack');
    assert.equal((line.err as string).split(`cannot bind port ${port}`).length, 2, `said once: ${String(line.err)}`);
  }
  // The listener itself does not add its own error line per attempt.
  assert.deepEqual(d.logs.filter((l) => l.proc === 'listener' && (l.level as number) >= 50), []);

  // Between attempts the app is 'failed'; during one it is 'starting' again: read it between two.
  const failed = await poll(async () => {
    const a = await d.app('clash');
    return a?.state === 'failed' ? a : undefined;
  }, 10_000, 'clash failed between attempts');
  assert.ok(failed.generation >= 3, `generation ${failed.generation} is the last attempt, not 0`);
  assert.equal(failed.currentError?.code, 'ERR_BIND');
  assert.equal(typeof failed.nextAttemptAt, 'string');

  await new Promise<void>((r) => squatter.close(() => r()));
  const running = await poll(async () => {
    const a = await d.app('clash');
    return a?.state === 'running' ? a : undefined;
  }, 40_000, 'clash running once the port is free');
  assert.equal(running.currentError, null, 'nothing is wrong now');
  assert.equal(running.nextAttemptAt, null);
  assert.equal(running.lastError?.code, 'ERR_BIND', 'history is kept');
  assert.equal(running.lastErrorAt, running.lastError?.at);
  assert.equal((await exchange(port, 'hi')).reply, 'one:hi');
});

test('a deleted config.json shows as missing in /status, not as an older error', async (t) => {
  const echo = await startEcho('one');
  t.after(() => echo.close());
  const good = { Apps: [appConfig('alpha', [0], [echo.port])] };
  const d = await startTestDaemon(t, good);
  const alpha = await poll(async () => {
    const a = await d.app('alpha');
    return a?.state === 'running' ? a : undefined;
  }, 10_000, 'alpha running');
  const port = alpha.ports[0]!;
  await d.writeConfig({ Apps: [{ Name: 'alpha', Port: [1] }] });
  await poll(async () => (await d.status()).config.error?.code === 'ERR_CONFIG_INVALID', 10_000, 'the invalid edit in /status');

  await rm(d.configPath);
  const missing = await poll(async () => {
    const s = await d.status();
    return s.config.error?.code === 'ERR_CONFIG_MISSING' ? s : undefined;
  }, 10_000, 'the missing file in /status');
  assert.match(missing.config.error!.message, /is missing/);
  assert.deepEqual(missing.config.error!.issues, []);
  assert.equal((await exchange(port, 'hi')).reply, 'one:hi', 'apps keep running');

  await d.writeConfig(good);
  await poll(async () => (await d.status()).config.error === null, 10_000, 'the error cleared once the file is back');
});

test('an app with only Routes shows its routes and their pools in /apps and in the listening log', async (t) => {
  const d = await startTestDaemon(t, {
    Apps: [appConfig('web', [0], [], { Tls: { Mode: 'passthrough' }, Routes: [{ Sni: ['a.example.test'], Targets: ['127.0.0.1:9443'] }, { Sni: ['b.example.test'], Alpn: ['h2'], Targets: ['127.0.0.1:9444'] }] })],
  });
  const app = await poll(async () => {
    const a = await d.app('web');
    return a?.state === 'running' ? a : undefined;
  }, 10_000, 'web running');
  const routes = [{ sni: ['a.example.test'], targets: ['127.0.0.1:9443'] }, { sni: ['b.example.test'], alpn: ['h2'], targets: ['127.0.0.1:9444'] }];
  assert.deepEqual(app.targets, []);
  assert.deepEqual(app.routes, routes);
  const listening = await d.waitLog((l) => l.proc === 'listener' && l.app === 'web' && Array.isArray(l.routes), 5000, 'a listener line with routes');
  assert.deepEqual(listening.routes, routes);
});
