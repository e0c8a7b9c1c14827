// GET /metrics on a real daemon: every listener process is asked on each scrape, exited ones are
// folded into the app's totals, so the numbers add up across workers and rollouts and never go back.
// Dropped log lines (each app's listeners', the daemon's own) are counted the same way.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import net from 'node:net';
import { once } from 'node:events';
import { closedPort, exchange, startEcho } from '../../proxy/testing.ts';
import { appConfig, waitFor as poll, startTestDaemon } from '../testing.ts';
import type { TestDaemon } from '../testing.ts';
import { logLinesDropped } from '../../proxy/index.ts';
import { DaemonMetrics } from './daemon-metrics.ts';
import { parsePrometheusText, sumSamples } from './prometheus-text.ts';

async function scrape(d: TestDaemon): Promise<ReturnType<typeof parsePrometheusText>> {
  const res = await d.get('/metrics');
  assert.equal(res.status, 200);
  return parsePrometheusText(res.body);
}

const connectionsTotal = async (d: TestDaemon, app: string) => sumSamples(await scrape(d), 'fproxy_connections_total', { app });

/** Open a connection through the proxy and keep it open (a first exchange proves it reached a target). */
async function holdOpen(port: number): Promise<net.Socket> {
  const s = net.connect({ port, host: '127.0.0.1', allowHalfOpen: true });
  await once(s, 'connect');
  s.write('hold');
  await once(s, 'data');
  return s;
}

test('N connections through 2 workers with two rollouts in the middle: fproxy_connections_total = N, never going back', async (t) => {
  const echo = await startEcho('e');
  t.after(() => echo.close());
  const app = (drain: number) => appConfig('web', [0], [echo.port], { Workers: 2, DrainTimeoutMs: drain });
  const d = await startTestDaemon(t, { Apps: [app(30_000)] });
  await poll(async () => (await d.app('web'))?.pids.length === 2, 15_000, 'two workers');
  const [port] = await d.ports('web');

  let ok = 0;
  let last = 0;
  const scrapes: number[] = [];
  const check = async () => {
    const v = await connectionsTotal(d, 'web');
    assert.ok(v >= last, `fproxy_connections_total went back from ${last} to ${v}`);
    last = v;
    scrapes.push(v);
  };
  const burst = async (n: number) => {
    for (let i = 0; i < n; i++) {
      const r = await exchange(port!, 'x');
      assert.equal(r.error, undefined, `connection failed: ${r.error?.message}`);
      assert.equal(r.reply, 'e:x');
      ok++;
      if (i % 10 === 0) await check();
    }
  };
  // Held across both rollouts: handed over to each new generation (HandOver, issue 16), counted once by the one they close in.
  const held = await Promise.all([holdOpen(port!), holdOpen(port!), holdOpen(port!)]);
  await burst(30);
  for (const [gen, drain] of [[2, 30_001], [3, 30_002]] as const) {
    await d.writeConfig({ Apps: [app(drain)] });
    await poll(async () => {
      const a = await d.app('web');
      return a?.generation === gen && a.state === 'running' && a.pids.length === 2;
    }, 20_000, `generation ${gen} serving`);
    await check();
    await burst(30);
  }
  for (const s of held) s.end();
  await Promise.all(held.map((s) => once(s, 'close')));
  const n = ok + held.length;
  // Generation 1 exits once its held connections close; its final snapshot is folded in then.
  await poll(async () => (await d.apps()).every((a) => a.drainingPids.length === 0), 15_000, 'old generations gone');
  // The client sees its close before the worker has counted it (the proxy sends the FIN, then
  // reports): wait until no worker has a session open, then every count must be exact.
  await poll(async () => sumSamples(await scrape(d), 'fproxy_active_connections', { app: 'web' }) === 0, 15_000, 'every session closed');
  const families = await scrape(d);
  t.diagnostic(`N = ${n}; scrapes saw ${scrapes.join(' ')} … ${sumSamples(families, 'fproxy_connections_total', { app: 'web' })}`);
  assert.equal(sumSamples(families, 'fproxy_connections_total', { app: 'web' }), n);
  assert.equal(sumSamples(families, 'fproxy_connections_total', { app: 'web', outcome: 'ok' }), n);
  assert.equal(sumSamples(families, 'fproxy_session_duration_seconds_count', { app: 'web' }), n);
  assert.equal(sumSamples(families, 'fproxy_connect_attempts_total', { app: 'web', result: 'ok' }), n);
  assert.equal(sumSamples(families, 'fproxy_rollouts_total', { app: 'web', result: 'completed' }), 2);
  assert.equal(sumSamples(families, 'fproxy_app_generation', { app: 'web' }), 3);
  assert.equal(sumSamples(families, 'fproxy_active_connections', { app: 'web' }), 0);
  // Each exchange sends 1 byte and gets 3 back ("e:x"); each held one 4 and 6 ("e:hold").
  assert.equal(sumSamples(families, 'fproxy_bytes_total', { app: 'web', direction: 'in' }), ok + 4 * held.length);
  assert.equal(sumSamples(families, 'fproxy_bytes_total', { app: 'web', direction: 'out' }), 3 * ok + 6 * held.length);
  assert.equal(await connectionsTotal(d, 'web'), n, 'a second scrape gives the same total');
});

test('/metrics is valid Prometheus text with every metric the issue names, HELP and TYPE included', async (t) => {
  const echo = await startEcho('e');
  t.after(() => echo.close());
  const dead = await closedPort(t);
  const d = await startTestDaemon(t, { Apps: [appConfig('web', [0], [`127.0.0.1:${dead}`, `127.0.0.1:${echo.port}`])] });
  const [port] = await d.ports('web');
  await poll(async () => (await d.app('web'))?.state === 'running', 15_000, 'web running');
  for (let i = 0; i < 4; i++) assert.equal((await exchange(port!, 'x')).reply, 'e:x');
  // A rejected edit counts; the app keeps running.
  await d.writeConfig('{"Apps": [');
  await poll(async () => (await d.status()).config.error !== null, 10_000, 'the rejected config');

  const res = await d.get('/metrics');
  const families = parsePrometheusText(res.body);
  const expect: Record<string, string> = {
    fproxy_connections_total: 'counter', fproxy_active_connections: 'gauge', fproxy_connect_attempts_total: 'counter',
    fproxy_target_up: 'gauge', fproxy_target_active_connections: 'gauge', fproxy_bytes_total: 'counter',
    fproxy_connect_duration_seconds: 'histogram', fproxy_tls_handshake_duration_seconds: 'histogram', fproxy_session_duration_seconds: 'histogram',
    fproxy_dns_lookups_total: 'counter', fproxy_config_reloads_total: 'counter', fproxy_config_last_reload_success_timestamp_seconds: 'gauge',
    fproxy_rollouts_total: 'counter', fproxy_rollout_duration_seconds: 'histogram', fproxy_listener_restarts_total: 'counter',
    fproxy_app_generation: 'gauge', fproxy_scrape_errors_total: 'counter', fproxy_log_lines_dropped_total: 'counter',
    process_cpu_seconds_total: 'counter', process_resident_memory_bytes: 'gauge',
  };
  for (const [name, type] of Object.entries(expect)) {
    const f = families.get(name);
    assert.ok(f, `${name} is exposed`);
    assert.equal(f.type, type, `${name} is a ${type}`);
    assert.ok(f.help.length > 0, `${name} has HELP`);
  }
  assert.equal(sumSamples(families, 'fproxy_connections_total', { app: 'web', outcome: 'ok' }), 4);
  // Round-robin starts on the dead target for some connections: refused, then the next one.
  assert.ok(sumSamples(families, 'fproxy_connect_attempts_total', { app: 'web', target: `127.0.0.1:${dead}`, result: 'refused' }) >= 1);
  assert.equal(sumSamples(families, 'fproxy_connect_attempts_total', { app: 'web', target: `127.0.0.1:${echo.port}`, result: 'ok' }), 4);
  assert.equal(sumSamples(families, 'fproxy_target_up', { app: 'web' }), 2, 'no target report says otherwise: both up');
  assert.equal(sumSamples(families, 'fproxy_config_reloads_total', { result: 'applied' }), 1);
  assert.ok(sumSamples(families, 'fproxy_config_reloads_total', { result: 'rejected' }) >= 1);
  assert.ok(sumSamples(families, 'fproxy_config_last_reload_success_timestamp_seconds') > 1.7e9);
  assert.match(res.body, /^fproxy_session_duration_seconds_bucket\{app="web",le="0\.0001"\} \d+$/m);
  assert.match(res.body, /^fproxy_session_duration_seconds_bucket\{app="web",le="3600"\} 4$/m);
});

test('a listener that does not answer is left out after ~1 s and counted in fproxy_scrape_errors_total; totals do not drop', async (t) => {
  const echo = await startEcho('e');
  t.after(() => echo.close());
  const d = await startTestDaemon(t, { Apps: [appConfig('web', [0], [echo.port], { Workers: 2 })] });
  const [port] = await d.ports('web');
  const a = await poll(async () => {
    const x = await d.app('web');
    return x?.pids.length === 2 ? x : undefined;
  }, 15_000, 'two workers');
  for (let i = 0; i < 6; i++) assert.equal((await exchange(port!, 'x')).reply, 'e:x');
  const before = await poll(async () => ((await connectionsTotal(d, 'web')) === 6 ? 6 : undefined), 5000, 'six counted');
  const victim = a.pids[0]!;
  process.kill(victim, 'SIGSTOP');
  t.after(() => {
    try {
      process.kill(victim, 'SIGCONT');
    } catch {}
  });
  const families = await scrape(d);
  assert.ok(sumSamples(families, 'fproxy_scrape_errors_total') >= 1, 'the stopped listener counted as a scrape error');
  assert.equal(sumSamples(families, 'fproxy_connections_total', { app: 'web' }), before, 'its last known counts still in');
});

test('a worker killed with SIGKILL keeps the counts it had reported', async (t) => {
  const echo = await startEcho('e');
  t.after(() => echo.close());
  const d = await startTestDaemon(t, { Apps: [appConfig('web', [0], [echo.port], { Workers: 2 })] });
  const [port] = await d.ports('web');
  const a = await poll(async () => {
    const x = await d.app('web');
    return x?.pids.length === 2 ? x : undefined;
  }, 15_000, 'two workers');
  for (let i = 0; i < 10; i++) assert.equal((await exchange(port!, 'x')).reply, 'e:x');
  await poll(async () => (await connectionsTotal(d, 'web')) === 10, 5000, 'ten counted');
  process.kill(a.pids[0]!, 'SIGKILL');
  await poll(async () => {
    const x = await d.app('web');
    return x?.pids.length === 2 && !x.pids.includes(a.pids[0]!);
  }, 10_000, 'a replacement worker');
  const families = await scrape(d);
  assert.equal(sumSamples(families, 'fproxy_connections_total', { app: 'web' }), 10);
  assert.equal(sumSamples(families, 'fproxy_listener_restarts_total', { app: 'web' }), 1);
});

test('log lines dropped on a broken stdout: fproxy_log_lines_dropped_total for the daemon (no label) and per app, kept across a rollout; /status logLinesDropped', async (t) => {
  const echo = await startEcho('e');
  t.after(() => echo.close());
  // AccessLog: one line per connection, written by the listener to the stdout it shares with the daemon.
  const app = (drain: number) => appConfig('web', [0], [echo.port], { AccessLog: true, DrainTimeoutMs: drain });
  const d = await startTestDaemon(t, { Apps: [app(2000)] });
  const [port] = await d.ports('web');
  await d.running('web');
  const dropped = async () => {
    const f = await scrape(d);
    const samples = f.get('fproxy_log_lines_dropped_total')?.samples ?? [];
    return { daemon: samples.find((s) => !('app' in s.labels))?.value, web: sumSamples(f, 'fproxy_log_lines_dropped_total', { app: 'web' }) };
  };
  assert.deepEqual(await dropped(), { daemon: 0, web: 0 }, 'nothing dropped while the test reads stdout');

  // Nobody reads the daemon's stdout from here on: every line of the daemon and its listeners fails (EPIPE) and is dropped.
  d.child.stdout!.destroy();
  for (let i = 0; i < 3; i++) assert.equal((await exchange(port!, 'x')).reply, 'e:x');
  const before = await poll(async () => {
    const n = await dropped();
    return n.web >= 3 ? n : undefined;
  }, 10_000, 'the three access lines dropped');

  // A rollout: the daemon logs it (dropped), generation 1 drains and exits; its count stays in.
  await d.writeConfig({ Apps: [app(2001)] });
  await d.running('web', 2);
  await poll(async () => (await d.apps()).every((a) => a.drainingPids.length === 0), 15_000, 'generation 1 gone');
  const after = await dropped();
  t.diagnostic(`dropped before the rollout ${JSON.stringify(before)}, after ${JSON.stringify(after)}`);
  assert.ok(after.daemon! > before.daemon!, 'the daemon\'s own lines about the rollout are counted');
  assert.ok(after.web > before.web, 'generation 1\'s drops are kept after it exits, and generation 2\'s are added');
  const status = await d.status();
  assert.ok(status.logLinesDropped >= after.daemon! + after.web, `/status logLinesDropped ${status.logLinesDropped} covers both`);
});

test('the daemon\'s own dropped log lines carry over an upgrade, as its other counters do', async (t) => {
  const m = new DaemonMetrics({ apps: () => [], sampleEveryMs: 0 });
  t.after(() => m.close());
  m.carryCounters({ fproxy_log_lines_dropped_total: [{ labels: {}, value: 5 }] }); // a predecessor's
  const mine = logLinesDropped(); // this process's own writer
  const own = parsePrometheusText(await m.render()).get('fproxy_log_lines_dropped_total')?.samples.find((s) => !('app' in s.labels));
  assert.equal(own?.value, mine + 5);
  assert.equal(m.logLinesDropped(), mine + 5, '/status counts it too');
  assert.deepEqual((await m.counters())['fproxy_log_lines_dropped_total'], [{ labels: {}, value: mine + 5 }], 'and hands it on to the next daemon');
});
