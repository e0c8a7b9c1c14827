// The daemon's process lifecycle: clean start errors, drain on SIGTERM, no orphans after SIGKILL.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { once } from 'node:events';
import net from 'node:net';
import { exchange, startEcho } from '../proxy/testing.ts';
import { aliveListeners, appConfig, childrenOf, waitFor, startTestDaemon } from './testing.ts';

test('SIGTERM lets an in-flight 5-second transfer finish, then exits 0', async (t) => {
  // A target that streams 10 chunks, one every 500 ms, then ends.
  const slow = net.createServer((s) => {
    s.on('error', () => {});
    let n = 0;
    const timer = setInterval(() => {
      s.write(`chunk${n}\n`);
      if (++n === 10) {
        clearInterval(timer);
        s.end();
      }
    }, 500);
    s.on('close', () => clearInterval(timer));
  });
  slow.listen(0, '127.0.0.1');
  await once(slow, 'listening');
  t.after(() => new Promise<void>((r) => slow.close(() => r())));
  const d = await startTestDaemon(t, { Apps: [appConfig('alpha', [0], [(slow.address() as net.AddressInfo).port], { DrainTimeoutMs: 20_000 })] }, { env: { FPROXY_HEARTBEAT_MS: '1000' } });
  await waitFor(async () => (await d.app('alpha'))?.state === 'running', 20_000, 'alpha running');
  const [port] = await d.ports('alpha');

  const client = net.connect(port!, '127.0.0.1');
  let received = '';
  client.on('data', (c) => (received += c));
  const ended = once(client, 'end').then(() => Date.now());
  await waitFor(() => received.includes('chunk0'), 20_000, 'the transfer to start');
  // Counted from the listener's heartbeat replies (one a second here; 5 s by default).
  await waitFor(async () => (await d.app('alpha'))?.activeConnections === 1, 20_000, 'activeConnections 1 in /apps');
  const pids = (await d.app('alpha'))!.pids;
  d.child.kill('SIGTERM');
  await d.waitLog((l) => l.event === 'drain-started', 20_000, 'the drain to start');
  // New connections are refused while the old one runs on.
  assert.ok((await exchange(port!, 'x', '127.0.0.1', 5000)).error, 'no new connection accepted while draining');
  const [exit, endAt] = await Promise.all([d.exited, ended]);
  const exitAt = Date.now();
  assert.deepEqual(exit, { code: 0, signal: null });
  assert.equal(received.split('\n').filter(Boolean).length, 10, 'every chunk arrived');
  assert.ok(endAt <= exitAt);
  await waitFor(() => aliveListeners(new Map(pids.map((p) => [p, d.listenerPids.get(p)!]))).length === 0, 20_000, 'listeners gone');
});

test('no listener survives the daemon being killed with SIGKILL', async (t) => {
  const echo = await startEcho('one');
  t.after(() => echo.close());
  const d = await startTestDaemon(t, { Apps: [appConfig('alpha', [0], [echo.port], { Workers: 2 }), appConfig('beta', [0], [echo.port])] });
  await waitFor(async () => (await d.apps()).filter((a) => a.state === 'running').length === 2, 20_000, 'both apps running');
  const [pa] = await d.ports('alpha');
  assert.equal(d.listenerPids.size, 3);
  // Every child: the three listeners and the idle spares.
  const children = await waitFor(async () => {
    const c = childrenOf(d.pid);
    return c.size === 3 + (await d.status()).spares ? c : undefined;
  }, 20_000, 'listeners and spares forked');
  for (const pid of d.listenerPids.keys()) assert.ok(children.has(pid), `listener ${pid} is a child of the daemon`);
  assert.ok(children.size > 3, 'spares are forked ahead of need');
  d.child.kill('SIGKILL');
  await d.exited;
  await waitFor(() => aliveListeners(children).length === 0, 20_000, 'every listener and spare to exit after the daemon died');
  assert.ok((await exchange(pa!, 'x', '127.0.0.1', 5000)).error, 'port released');
});

test('an invalid config at start is a clear error and exit 1', async (t) => {
  const d = await startTestDaemon(t, { Apps: [{ Name: 'alpha', Ports: [-1], Targets: [] }] }, { noWait: true });
  const exit = await d.exited;
  assert.equal(exit.code, 1);
  assert.match(d.stderr, /Invalid config .*config\.json/);
  assert.match(d.stderr, /Ports/);
  assert.equal(d.listenerPids.size, 0);
});

test('an invalid LOG_LEVEL is a clear error and exit 1', async (t) => {
  const d = await startTestDaemon(t, { Apps: [] }, { noWait: true, env: { LOG_LEVEL: 'loud' } });
  assert.equal((await d.exited).code, 1);
  assert.match(d.stderr, /Invalid LOG_LEVEL "loud"/);
});

test('GET /healthz answers 200, unknown paths 404', async (t) => {
  const d = await startTestDaemon(t, { Apps: [] });
  assert.deepEqual(await d.get('/healthz'), { status: 200, body: 'ok\n' });
  assert.equal((await d.get('/nope')).status, 404);
  const status = await d.status();
  assert.equal(status.config.path, d.configPath);
  assert.equal(status.config.error, null);
  assert.deepEqual(status.apps, []);
});
