// Live connection handover (issue 16 §2): when a rollout drains a generation, its established plain
// TCP and TLS passthrough connections move to the new generation's workers (sockets passed over IPC)
// instead of waiting out DrainTimeoutMs. Long-lived connections each send a counter every 100 ms
// and check the echo end to end: across rollouts that change the targets every time, every
// connection survives with its byte stream intact, and each old generation exits long before its
// 60 s drain timeout. With "HandOver": false the old generation keeps its connections (today's drain).
import { test } from 'node:test';
import assert from 'node:assert/strict';
import net from 'node:net';
import tls from 'node:tls';
import { once } from 'node:events';
import { makeCert, startEcho, tempDir } from '../proxy/testing.ts';
import { simulate } from '../ftest/simulate.ts';
import { parsePrometheusText, sumSamples } from './metrics/prometheus-text.ts';
import { aliveListeners, appConfig, processStartTime, startTestDaemon, waitFor } from './testing.ts';
import { CounterClient, listenEcho, startPlainEcho } from './testing-streams.ts';
import type { TestDaemon } from './testing.ts';

/** The default engine is native (C owns the fds: they are detached from it and moved); js moves Node sockets. */
const ENGINES = ['native', 'js'] as const;

async function startTlsEchoServer(dir: string, name: string): Promise<{ port: number; close: () => Promise<void> }> {
  const cert = await makeCert(dir, name, [name]);
  return listenEcho((onSocket) => tls.createServer({ key: cert.key, cert: cert.pem }, onSocket));
}

async function oldGenerationsGone(d: TestDaemon, app: string): Promise<number> {
  const started = Date.now();
  await waitFor(async () => (await d.apps()).filter((a) => a.name === app).every((a) => a.drainingPids.length === 0), 30_000, `app ${app}'s old generations to exit`, 20);
  return Date.now() - started;
}

for (const engine of ENGINES) test(`${engine} engine: 50 plain + 20 TLS passthrough long-lived connections survive 5 rollouts with their byte streams intact; old generations exit long before DrainTimeoutMs`, async (t) => {
  const dir = await tempDir(t);
  const plain = [await startPlainEcho(), await startPlainEcho()];
  const secure = [await startTlsEchoServer(dir, 'a.test'), await startTlsEchoServer(dir, 'b.test')];
  t.after(() => Promise.all([...plain, ...secure].map((s) => s.close())));
  const config = (i: number) => ({
    Apps: [
      appConfig('plain', [0], [plain[i % 2]!.port], { Workers: 2, DrainTimeoutMs: 60_000 }),
      appConfig('pass', [0], [secure[i % 2]!.port], { Workers: 2, DrainTimeoutMs: 60_000, Tls: { Mode: 'passthrough' }, AccessLog: true }),
    ],
  });
  const d = await startTestDaemon(t, config(0), { env: { FPROXY_SPARE_LISTENERS: '4', FPROXY_ENGINE: engine } });
  const [plainPort] = await d.ports('plain');
  const [passPort] = await d.ports('pass');
  await d.running('plain');
  await d.running('pass');

  const clients: CounterClient[] = [];
  for (let i = 0; i < 50; i++) {
    const s = net.connect({ port: plainPort!, host: '127.0.0.1' });
    await once(s, 'connect');
    clients.push(new CounterClient(s, `plain ${i}`));
  }
  for (let i = 0; i < 20; i++) {
    const s = tls.connect({ port: passPort!, host: '127.0.0.1', servername: 'a.test', rejectUnauthorized: false });
    await once(s, 'secureConnect');
    clients.push(new CounterClient(s, `tls ${i}`));
  }
  t.after(() => clients.forEach((c) => void c.stop()));
  clients.forEach((c) => c.start());

  const exitMs: number[] = [];
  for (let i = 1; i <= 5; i++) {
    await d.writeConfig(config(i));
    await d.running('plain', i + 1);
    await d.running('pass', i + 1);
    exitMs.push(Math.max(await oldGenerationsGone(d, 'plain'), await oldGenerationsGone(d, 'pass')));
    // Every connection carries on through the new generation: 3 more echoes each.
    const before = clients.map((c) => c.received.length);
    await waitFor(() => clients.every((c, n) => c.problem !== undefined || c.received.length >= before[n]! + 6), 20_000, 'every connection echoing after the rollout');
    const broken = clients.filter((c) => c.problem !== undefined);
    assert.deepEqual(broken.map((c) => c.problem), [], `after rollout ${i}`);
  }
  await Promise.all(clients.map((c) => c.stop()));
  t.diagnostic(`old generations gone after ${exitMs.join(', ')} ms (from the new generation running); ${clients.reduce((n, c) => n + c.sent, 0)} counters echoed`);
  assert.deepEqual(clients.filter((c) => c.problem !== undefined).map((c) => c.problem), []);
  // The connections now run on the newest generation's workers: its /apps counts them.
  assert.ok(clients.every((c) => c.sent > 10), 'every client kept sending');
  // Each passthrough connection ends in the worker that adopted it last, with its SNI carried along.
  const access = () => d.logs.filter((l) => l.event === 'access' && l.app === 'pass');
  await waitFor(() => access().length >= 20, 20_000, 'an access line per passthrough connection');
  assert.deepEqual([...new Set(access().map((l) => l.sni))], ['a.test']);
});

test('"HandOver": false keeps today\'s drain: the old generation keeps its connection until it ends', async (t) => {
  const echo = await startPlainEcho();
  t.after(() => echo.close());
  const config = (n: number) => ({ Apps: [appConfig('plain', [0], [echo.port], { DrainTimeoutMs: 60_000, HandOver: false, ConnectTimeoutMs: 5000 + n })] });
  const d = await startTestDaemon(t, config(0));
  const [port] = await d.ports('plain');
  const s = net.connect({ port: port!, host: '127.0.0.1' });
  await once(s, 'connect');
  const c = new CounterClient(s, 'plain');
  c.start();
  t.after(() => void c.stop());
  const first = await d.running('plain');
  await d.writeConfig(config(1));
  await d.running('plain', 2);
  // The old worker stays, draining, while the connection lives.
  const draining = await waitFor(async () => (await d.apps()).find((a) => a.name === 'plain' && a.drainingPids.length > 0), 10_000, 'the old generation draining');
  assert.deepEqual(draining.drainingPids, first.pids);
  await c.stop();
  assert.equal(c.problem, undefined);
  await oldGenerationsGone(d, 'plain');
});

test('native engine: 6 rollouts under c=50 short connections (a new one per exchange; detaches race their closes): 0 failures, every connection counted once, none left open', async (t) => {
  const echo = await startEcho('one');
  t.after(() => echo.close());
  const config = (n: number) => ({ Apps: [appConfig('web', [0], [echo.port], { Workers: 2, ConnectTimeoutMs: 5000 + n })] });
  const d = await startTestDaemon(t, config(0), { env: { FPROXY_SPARE_LISTENERS: '4' } });
  const [port] = await d.ports('web');
  await d.running('web');
  const abort = new AbortController();
  t.after(() => abort.abort());
  const failures: string[] = [];
  // When each rollout was asked for and when it ran, for a failure's message (ms since the load began).
  const t0 = Date.now();
  const events: string[] = [];
  const load = simulate({ target: { host: '127.0.0.1', port: port!, label: `127.0.0.1:${port}` }, concurrency: 50, durationMs: 600_000, signal: abort.signal, onError: (f) => failures.push(`+${Date.now() - t0} ms ${f.message}`) });
  for (let i = 1; i <= 6; i++) {
    // Let each generation take connections before it is replaced (bounded: at most 10 s each).
    const before = (await d.app('web'))!.generation;
    await waitFor(async () => sumSamples(parsePrometheusText((await d.get('/metrics')).body), 'fproxy_connections_total', { app: 'web' }) > i * 200, 10_000, 'connections flowing');
    events.push(`+${Date.now() - t0} ms rollout ${i} written (generation ${before} serving)`);
    await d.writeConfig(config(i));
    await d.running('web', before + 1);
    events.push(`+${Date.now() - t0} ms generation ${before + 1} running`);
  }
  abort.abort();
  const summary = await load;
  // A failure names its first few clients' errors and every warning the daemon and its listeners
  // logged (a rare reset here — once in ~20 full runs — has not been reproduced alone yet).
  const warnings = () => d.logs.filter((l) => Number(l.level) >= 40).map((l) => JSON.stringify(l)).join('\n');
  assert.equal(summary.errors, 0, `${failures.slice(0, 5).join('; ')}\nrollouts:\n${events.join('\n')}\nwarnings:\n${warnings()}`);
  // A session handed over just as both ends closed must still finish (and be counted) in its new worker.
  const total = await waitFor(async () => {
    const v = sumSamples(parsePrometheusText((await d.get('/metrics')).body), 'fproxy_connections_total', { app: 'web' });
    return v >= summary.exchanges ? v : undefined;
  }, 20_000, `every one of the exchanges counted`);
  assert.equal(total, summary.exchanges);
  await waitFor(async () => (await d.app('web'))?.activeConnections === 0, 20_000, 'no connection left open');
  t.diagnostic(`${summary.exchanges} exchanges over 6 rollouts, all counted`);
});

test('a worker stopped by SIGTERM is replaced first, then hands its connections to the replacement: 3 kills, every stream intact, each killed worker gone long before DrainTimeoutMs', async (t) => {
  const dir = await tempDir(t);
  const plain = await startPlainEcho();
  const secure = await startTlsEchoServer(dir, 'a.test');
  t.after(() => Promise.all([plain.close(), secure.close()]));
  const d = await startTestDaemon(t, {
    Apps: [
      appConfig('plain', [0], [plain.port], { Workers: 2, DrainTimeoutMs: 60_000 }),
      appConfig('pass', [0], [secure.port], { Workers: 2, DrainTimeoutMs: 60_000, Tls: { Mode: 'passthrough' } }),
    ],
  }, { env: { FPROXY_SPARE_LISTENERS: '2' } });
  const [plainPort] = await d.ports('plain');
  const [passPort] = await d.ports('pass');
  await d.running('plain');
  await d.running('pass');
  const clients: CounterClient[] = [];
  for (let i = 0; i < 30; i++) {
    const s = net.connect({ port: plainPort!, host: '127.0.0.1' });
    await once(s, 'connect');
    clients.push(new CounterClient(s, `plain ${i}`));
  }
  for (let i = 0; i < 10; i++) {
    const s = tls.connect({ port: passPort!, host: '127.0.0.1', servername: 'a.test', rejectUnauthorized: false });
    await once(s, 'secureConnect');
    clients.push(new CounterClient(s, `tls ${i}`));
  }
  t.after(() => clients.forEach((c) => void c.stop()));
  clients.forEach((c) => c.start());
  const goneMs: number[] = [];
  for (const [k, app] of ['plain', 'pass', 'plain'].entries()) {
    const before = (await d.app(app))!;
    const victim = before.pids[k % before.pids.length]!;
    const seen = new Map([[victim, processStartTime(victim)!]]);
    const started = Date.now();
    process.kill(victim, 'SIGTERM');
    await waitFor(() => aliveListeners(seen).length === 0, 30_000, `worker ${victim} gone after SIGTERM`);
    goneMs.push(Date.now() - started);
    // Same generation, a full set of workers again, the victim not among them.
    await waitFor(async () => {
      const a = (await d.app(app))!;
      return a.generation === before.generation && a.pids.length === 2 && !a.pids.includes(victim);
    }, 20_000, `app ${app} back to 2 workers`);
    const echoed = clients.map((c) => c.received.length);
    await waitFor(() => clients.every((c, n) => c.problem !== undefined || c.received.length >= echoed[n]! + 6), 20_000, 'every connection echoing after the kill');
    assert.deepEqual(clients.filter((c) => c.problem !== undefined).map((c) => c.problem), [], `after kill ${k + 1}`);
  }
  await Promise.all(clients.map((c) => c.stop()));
  assert.deepEqual(clients.filter((c) => c.problem !== undefined).map((c) => c.problem), []);
  t.diagnostic(`killed workers gone ${goneMs.join(', ')} ms after SIGTERM (DrainTimeoutMs 60000)`);
});
