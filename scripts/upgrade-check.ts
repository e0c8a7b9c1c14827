// upgrade-check: shows that upgrading the daemon itself (SIGUSR2 through `fproxy upgrade`) costs no
// connection. It starts tagged echo targets, TLS echo targets (rollout-check-lib/tls-app.ts) and
// the real daemon (daemon/main.ts, a child process) with a plain TCP app and a TLS passthrough app,
// every port 0 (the kernel picks; an upgrade must keep them). For the whole run it keeps two loads
// going, each with a new connection per exchange: `simulate` on the plain app at --concurrency,
// TLS clients on the passthrough app at --tls-concurrency (at most --tls-rate a second). It runs
// `fproxy upgrade` (daemon/upgrade-command.ts) --upgrades times, --interval-ms apart, and checks
// after each: the command exited 0, a new daemon pid answers, the ports are the same, the old
// daemon is gone within 60 s; it reports how long each old daemon lived after its hand-over. A
// third app carries --long long-lived connections (a counter every 100 ms, echoed and checked end to
// end, DrainTimeoutMs 60 s): handed to each new daemon, none may be cut (reported as "long-lived cut").
// Prints connections, failures, upgrades and timings; exits 1 on any failure.
//
//   scripts/upgrade-check [--upgrades 10] [--concurrency 50] [--tls-concurrency 5] [--tls-rate 20] [--long 20] [--workers 2] [--interval-ms 1000] [--timeout-ms 5000] [--verbose]
import net from 'node:net';
import { once } from 'node:events';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import { startEchoServers } from '../ftest/echo-server.ts';
import { simulate } from '../ftest/simulate.ts';
import type { Failure } from '../ftest/failure.ts';
import type { DaemonStatus } from '../daemon/daemon.ts';
import { processStartTime } from '../daemon/testing.ts';
import { CounterClient, startPlainEcho } from '../daemon/testing-streams.ts';
import { runUpgrade } from '../daemon/upgrade-command.ts';
import { startDaemon } from './rollout-check-lib/daemon-child.ts';
import { median, ms } from './rollout-check-lib/time-to-effect.ts';
import { TLS_APP, TLS_NAMES, startTlsApp } from './rollout-check-lib/tls-app.ts';
import { tlsLoad } from './rollout-check-lib/tls-load.ts';
import { runCheck, verdict } from './rollout-check-lib/verdict.ts';

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

function options() {
  const { values } = parseArgs({
    options: {
      upgrades: { type: 'string', default: '10' },
      concurrency: { type: 'string', default: '50' },
      'tls-concurrency': { type: 'string', default: '5' },
      'tls-rate': { type: 'string', default: '20' },
      long: { type: 'string', default: '20' },
      workers: { type: 'string', default: '2' },
      'interval-ms': { type: 'string', default: '1000' },
      'timeout-ms': { type: 'string', default: '5000' },
      verbose: { type: 'boolean', default: false },
    },
  });
  const int = (k: keyof typeof values, min: number): number => {
    const n = Number(values[k]);
    if (!Number.isInteger(n) || n < min) throw new Error(`--${k} must be an integer ≥ ${min}, got ${String(values[k])}`);
    return n;
  };
  return { upgrades: int('upgrades', 1), concurrency: int('concurrency', 1), tlsConcurrency: int('tls-concurrency', 0), tlsRate: int('tls-rate', 0), long: int('long', 0), workers: int('workers', 1), intervalMs: int('interval-ms', 0), timeoutMs: int('timeout-ms', 100), verbose: values.verbose === true };
}

async function main(): Promise<number> {
  const opts = options();
  const dir = await mkdtemp(join(tmpdir(), 'fproxy-upgrade-check-'));
  const tlsApp = await startTlsApp(dir).catch(async (err: unknown) => {
    await rm(dir, { recursive: true, force: true });
    throw err;
  });
  const echo = await startEchoServers({ ports: [0, 0], host: '127.0.0.1', tag: true });
  const configPath = join(dir, 'config.json');
  const longEcho = await startPlainEcho();
  await writeFile(configPath, JSON.stringify({ Apps: [
    { Name: 'web', Ports: [0], Targets: echo.ports.map((p) => `127.0.0.1:${p}`), Workers: opts.workers, DrainTimeoutMs: 5000 },
    tlsApp.config(0, 0, opts.workers),
    { Name: 'long', Ports: [0], Targets: [`127.0.0.1:${longEcho.port}`], Workers: opts.workers, DrainTimeoutMs: 60_000 },
  ] }, null, 2));
  const longClients: CounterClient[] = [];
  // Connections are handed to the new daemon's workers on either engine: the default (native)
  // unless FPROXY_ENGINE says otherwise.
  const daemon = startDaemon(configPath, { FPROXY_SPARE_LISTENERS: String(2 * opts.workers), FPROXY_ENGINE: process.env.FPROXY_ENGINE ?? 'native' }, opts.verbose);
  const problems: string[] = [];
  const abort = new AbortController();
  const daemons = new Map<number, string>([[daemon.child.pid!, processStartTime(daemon.child.pid!) ?? '']]);
  let adminPort = 0;
  const status = async (): Promise<DaemonStatus> => (await (await fetch(`http://127.0.0.1:${adminPort}/status`)).json()) as DaemonStatus;
  const ports = async (): Promise<string> => {
    const s = await status();
    return s.apps.filter((a) => a.state === 'running').map((a) => `${a.name}:${a.ports.join(',')}`).sort().join(' ');
  };
  const commandMs: number[] = [];
  const oldLivedMs: number[] = [];
  try {
    for (const deadline = Date.now() + 60_000; ; await sleep(25)) {
      if (Date.now() > deadline || daemon.child.exitCode !== null) throw new Error('the daemon did not start its apps within 60 s');
      adminPort = daemon.adminPort();
      if (adminPort !== 0 && (await daemon.apps()).filter((a) => a.state === 'running').length === 3) break;
    }
    const longPort = (await daemon.app('long'))!.ports[0]!;
    for (let n = 0; n < opts.long; n++) {
      const socket = net.connect({ port: longPort, host: '127.0.0.1' });
      await once(socket, 'connect');
      longClients.push(new CounterClient(socket, `long-lived connection ${n}`));
    }
    longClients.forEach((c) => c.start());
    const firstPorts = await ports();
    const web = (await daemon.app('web'))!.ports[0]!;
    const tlsPort = (await daemon.app(TLS_APP))!.ports[0]!;
    const firstFailures: Failure[] = [];
    const load = simulate({ target: { host: '127.0.0.1', port: web, label: `127.0.0.1:${web}` }, concurrency: opts.concurrency, durationMs: 3_600_000, timeoutMs: opts.timeoutMs, signal: abort.signal, onError: (f) => void (firstFailures.length < 10 && firstFailures.push(f)) });
    const tlsRun = tlsLoad({ port: tlsPort, servernames: TLS_NAMES, concurrency: opts.tlsConcurrency, ratePerSec: opts.tlsRate, durationMs: 3_600_000, timeoutMs: opts.timeoutMs, signal: abort.signal, judge: tlsApp.judge, onError: (f) => void (firstFailures.length < 10 && firstFailures.push(f)) });
    await sleep(opts.intervalMs);
    for (let i = 1; i <= opts.upgrades; i++) {
      const before = (await status()).pid;
      const lines: string[] = [];
      const t0 = performance.now();
      const code = await runUpgrade({ admin: `127.0.0.1:${adminPort}`, timeoutMs: 60_000 }, { log: (s) => lines.push(s), error: (s) => lines.push(s) });
      const handedOverAt = performance.now();
      commandMs.push(handedOverAt - t0);
      if (code !== 0) {
        problems.push(`upgrade ${i}: fproxy upgrade exited ${code}: ${lines.join(' / ')}`);
        break;
      }
      const after = await status();
      daemons.set(after.pid, processStartTime(after.pid) ?? '');
      if (after.pid === before) problems.push(`upgrade ${i}: the same daemon pid ${before} answers`);
      const nowPorts = await ports();
      if (nowPorts !== firstPorts) problems.push(`upgrade ${i}: ports changed: ${firstPorts} → ${nowPorts}`);
      // The old daemon drains (its listeners up to DrainTimeoutMs) and exits.
      const start = daemons.get(before);
      for (const deadline = Date.now() + 60_000; processStartTime(before) === start && start !== undefined; await sleep(20)) {
        if (Date.now() > deadline) {
          problems.push(`upgrade ${i}: the old daemon ${before} still runs 60 s after its hand-over`);
          break;
        }
      }
      oldLivedMs.push(performance.now() - handedOverAt);
      if (opts.verbose) process.stderr.write(`upgrade ${i}: ${before} → ${after.pid} in ${ms(commandMs.at(-1))}; old one gone after ${ms(oldLivedMs.at(-1))}\n`);
      await sleep(opts.intervalMs);
    }
    abort.abort();
    const [summary, tls] = await Promise.all([load, tlsRun]);
    await Promise.all(longClients.map((c) => c.stop()));
    const cut = longClients.filter((c) => c.problem !== undefined);
    if (cut.length > 0) problems.push(`${cut.length} long-lived connections cut or corrupted; first: ${cut.slice(0, 3).map((c) => c.problem).join('; ')}`);
    if (summary.errors > 0 || tls.errors > 0) problems.push(`${summary.errors} plain and ${tls.errors} TLS connection failures; first: ${firstFailures.map((f) => f.message).join('; ')}`);
    const line = (label: string, value: string) => `${`${label}:`.padEnd(28)}${value}`;
    process.stdout.write(
      [
        line('connections made', `${summary.exchanges} plain (c=${opts.concurrency}), ${tls.exchanges} TLS passthrough (c=${opts.tlsConcurrency})`),
        line('failures', `${summary.errors} plain, ${tls.errors} TLS`),
        line('upgrades', `${commandMs.length} of ${opts.upgrades} (daemon pids ${[...daemons.keys()].join(' → ')})`),
        line('fproxy upgrade took', `median ${ms(median(commandMs))}, max ${ms(Math.max(...commandMs))}`),
        line('old daemon gone after', `median ${ms(median(oldLivedMs))}, max ${ms(Math.max(...oldLivedMs))} (from the hand-over: its listeners drain, handing their connections over)`),
        line('long-lived cut', `${cut.length} of ${longClients.length} (each echoing a counter every 100 ms, checked end to end; DrainTimeoutMs 60 s)`),
        line('engine', `${process.env.FPROXY_ENGINE ?? 'native'} (default native)`),
        line('load', `${Math.round(summary.exchangesPerSec)} exchanges/s, rtt p99 ${summary.rtt.p99} ms`),
      ].join('\n') + '\n',
    );
  } catch (err) {
    problems.push((err as Error).message);
  } finally {
    abort.abort();
    // The daemon that runs now is not our child after an upgrade: SIGTERM it by pid (checked by start time).
    let current: number | undefined;
    try {
      current = (await status()).pid;
    } catch {
      // No daemon answers.
    }
    if (current !== undefined && current !== daemon.child.pid && processStartTime(current) === daemons.get(current)) {
      process.kill(current, 'SIGTERM');
      for (const deadline = Date.now() + 30_000; processStartTime(current) !== undefined && Date.now() < deadline; ) await sleep(50);
      if (processStartTime(current) !== undefined) {
        problems.push(`the last daemon (${current}) did not exit within 30 s of SIGTERM`);
        process.kill(current, 'SIGKILL');
      }
    }
    const stopProblem = await daemon.stop();
    if (stopProblem !== undefined && daemon.child.exitCode !== 0) problems.push(stopProblem);
    longClients.forEach((c) => void c.stop());
    await Promise.all([echo.close(), tlsApp.close(), longEcho.close()]);
    await rm(dir, { recursive: true, force: true });
  }
  return verdict(problems, opts.verbose, daemon.tail);
}

await runCheck('upgrade-check', main);
