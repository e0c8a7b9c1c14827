// Daemon upgrade (SIGUSR2, `fproxy upgrade`): a new daemon from the code on disk takes over the
// admin socket and every app's ports while the old one still serves, then the old one drains and
// exits. Under load with a new connection per exchange no connection fails; counters, health
// states and kernel-picked ports carry over; a new daemon that cannot start leaves the old serving.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import type { TestContext } from 'node:test';
import net from 'node:net';
import { once } from 'node:events';
import { exchange, startEcho } from '../proxy/testing.ts';
import { CounterClient, startPlainEcho } from './testing-streams.ts';
import { simulate } from '../ftest/simulate.ts';
import { parsePrometheusText, sumSamples } from './metrics/prometheus-text.ts';
import { runUpgrade } from './upgrade-command.ts';
import { aliveListeners, appConfig, processStartTime, startTestDaemon, waitFor } from './testing.ts';
import type { TestDaemon } from './testing.ts';

const quiet = () => {
  const lines: string[] = [];
  return { lines, out: { log: (s: string) => lines.push(s), error: (s: string) => lines.push(`ERR ${s}`) } };
};

/** Successor daemons are not the test's child: kill them by pid (checked by start time) in t.after. */
function reapLater(t: TestContext, d: TestDaemon, pids: Map<number, string>): void {
  t.after(async () => {
    for (const [pid, start] of pids) if (processStartTime(pid) === start) process.kill(pid, 'SIGKILL');
    await waitFor(() => aliveListeners(d.listenerPids).length === 0, 10_000).catch(() => {});
    for (const pid of aliveListeners(d.listenerPids)) process.kill(pid, 'SIGKILL');
  });
}

async function upgrade(d: TestDaemon, successors: Map<number, string>): Promise<number> {
  const { lines, out } = quiet();
  const code = await runUpgrade({ admin: `127.0.0.1:${d.adminPort}`, timeoutMs: 60_000 }, out);
  assert.equal(code, 0, lines.join('\n'));
  const status = await d.status();
  successors.set(status.pid, processStartTime(status.pid)!);
  return status.pid;
}

test('two upgrades under load at c=50 (a new connection per exchange): 0 failures, long-lived connections handed over intact, ports, counters and health carried', async (t) => {
  const echo = await startEcho('one');
  t.after(() => echo.close());
  const stream = await startPlainEcho();
  t.after(() => stream.close());
  const d = await startTestDaemon(t, {
    Apps: [
      appConfig('web', [0], [echo.port], { Workers: 2, HealthCheck: { IntervalMs: 200, Rise: 1 } }),
      appConfig('long', [0], [stream.port], { Workers: 2, DrainTimeoutMs: 60_000 }),
    ],
  // The default (native) engine: its pairs are detached and handed over to the new daemon's workers.
  }, { env: { FPROXY_SPARE_LISTENERS: '2' } });
  const successors = new Map<number, string>();
  reapLater(t, d, successors);
  const [port] = await d.ports('web');
  await d.running('web');
  await waitFor(async () => (await d.app('web'))?.health[0]?.state === 'up', 10_000, 'the target up');
  const firstPid = d.pid;
  // Long-lived connections (a counter every 100 ms, echoed): handed over to the new daemon's workers.
  const [longPort] = await d.ports('long');
  await d.running('long');
  const streams: CounterClient[] = [];
  for (let i = 0; i < 10; i++) {
    const s = net.connect({ port: longPort!, host: '127.0.0.1' });
    await once(s, 'connect');
    streams.push(new CounterClient(s, `long ${i}`));
  }
  streams.forEach((c) => c.start());
  t.after(() => streams.forEach((c) => void c.stop()));

  const abort = new AbortController();
  const failures: string[] = [];
  const load = simulate({ target: { host: '127.0.0.1', port: port!, label: `127.0.0.1:${port}` }, concurrency: 50, durationMs: 600_000, signal: abort.signal, onError: (f) => failures.push(f.message) });
  t.after(() => abort.abort());
  const healthSeen: string[] = [];
  const watchHealth = setInterval(() => void d.app('web').then((a) => a && healthSeen.push(a.health[0]!.state), () => {}), 50);
  t.after(() => clearInterval(watchHealth));

  // The daemon's own counters carry over too: give this one some reloads (one SIGHUP at a time).
  const reloads = async (): Promise<number> => sumSamples(parsePrometheusText((await d.get('/metrics')).body), 'fproxy_config_reloads_total', {});
  for (let k = 0; k < 5; k++) {
    const was = await reloads();
    process.kill(firstPid, 'SIGHUP');
    await waitFor(async () => (await reloads()) > was, 10_000, `SIGHUP ${k + 1} counted`);
  }
  let lastReloads = await reloads();

  let pid = firstPid;
  let lastTotal = 0;
  for (let i = 0; i < 2; i++) {
    const next = await upgrade(d, successors);
    assert.notEqual(next, pid, 'a new daemon answers');
    const status = await d.status();
    assert.deepEqual({ state: status.upgrade.state, from: status.upgrade.from }, { state: 'took-over', from: pid });
    const app = await d.running('web');
    assert.deepEqual(app.ports, [port], 'the kernel-picked port carried over');
    // Counters carried: never below what the previous daemon had counted.
    const total = sumSamples(parsePrometheusText((await d.get('/metrics')).body), 'fproxy_connections_total', { app: 'web' });
    assert.ok(total >= lastTotal, `fproxy_connections_total went back from ${lastTotal} to ${total}`);
    lastTotal = total;
    const reloaded = await reloads();
    assert.ok(reloaded >= lastReloads, `fproxy_config_reloads_total went back from ${lastReloads} to ${reloaded}`);
    t.diagnostic(`reloads ${lastReloads} -> ${reloaded}`);
    lastReloads = reloaded;
    pid = next;
    const before = streams.map((c) => c.received.length);
    await waitFor(() => streams.every((c, n) => c.problem !== undefined || c.received.length >= before[n]! + 6), 20_000, 'every long-lived connection echoing after the upgrade');
    assert.deepEqual(streams.map((c) => c.problem).filter(Boolean), [], `after upgrade ${i + 1}`);
  }
  await Promise.all(streams.map((c) => c.stop()));
  assert.deepEqual(streams.map((c) => c.problem).filter(Boolean), [], 'every long-lived connection intact end to end');
  // The first daemon drained and exited 0 (it is the test's child): long before the long app's 60 s drain.
  assert.deepEqual(await d.exited, { code: 0, signal: null });
  abort.abort();
  const summary = await load;
  clearInterval(watchHealth);
  t.diagnostic(`${summary.exchanges} exchanges, ${summary.errors} failed, over 2 upgrades; counters at the end ${lastTotal}`);
  assert.equal(summary.errors, 0, `failures: ${failures.slice(0, 5).join('; ')}`);
  assert.ok(summary.exchanges > 100, 'the load ran');
  assert.ok(!healthSeen.includes('unknown'), `health never flapped to unknown: ${[...new Set(healthSeen)].join(',')}`);
  // The final totals of the old daemon arrived: everything the load made is counted.
  await waitFor(async () => sumSamples(parsePrometheusText((await d.get('/metrics')).body), 'fproxy_connections_total', { app: 'web' }) >= summary.exchanges, 10_000, 'every exchange counted');
  assert.equal((await exchange(port!, 'hi')).reply, 'one:hi');
});

test('a new daemon that cannot start leaves the old one serving, and the command exits 1 with the reason', async (t) => {
  const echo = await startEcho('one');
  t.after(() => echo.close());
  const d = await startTestDaemon(t, { Apps: [appConfig('web', [0], [echo.port])] }, { env: { FPROXY_SPARE_LISTENERS: '0' } });
  const successors = new Map<number, string>();
  reapLater(t, d, successors);
  const [port] = await d.ports('web');
  // The config on disk now is invalid: the new daemon cannot start (the running one keeps its last good config).
  await d.writeConfig('{"Apps": [{"Name": "web", "Ports": [0], "Targets": ["nowhere"]}]}');
  await waitFor(async () => (await d.status()).config.error !== null, 10_000, 'the bad edit rejected');
  const { lines, out } = quiet();
  const code = await runUpgrade({ admin: `127.0.0.1:${d.adminPort}`, timeoutMs: 60_000 }, out);
  assert.equal(code, 1, lines.join('\n'));
  const status = await d.status();
  assert.equal(status.pid, d.pid, 'the old daemon still answers');
  assert.equal(status.upgrade.state, 'failed');
  assert.match(lines.join('\n'), /upgrade failed; the daemon \(pid \d+\) keeps serving: .*"nowhere".*ERR_CONFIG_INVALID/s);
  assert.equal((await exchange(port!, 'hi')).reply, 'one:hi');
  assert.equal((await d.app('web'))?.state, 'running');
});
