// rollout-check: shows that config rollouts cost no connection, for plain TCP and TLS passthrough
// apps alike. It starts two sets of tagged echo targets, four TLS echo targets with a certificate
// each (rollout-check-lib/tls-app.ts) and the real daemon (daemon/main.ts, as a child process).
// For the whole run it keeps two loads going, each with a new connection per exchange:
// - `simulate` against the "rolling" app at --concurrency;
// - TLS clients against the "tls-pass" app at --tls-concurrency, starting at most --tls-rate
//   exchanges a second (a node TLS exchange costs ~2.5 ms of CPU here, client and target ends
//   together; uncapped, this loop would take a whole core from the rest of the check on a 2-core
//   machine). Each exchange: handshake with SNI a.rollout.test or b.rollout.test in turn, send,
//   read the tagged echo, close; it counts only if a target on that SNI's route answered, with
//   that target's own certificate.
// It rewrites the config --rewrites times with atomic renames: each rewrite alternates the
// rolling app's target set, adds/removes its second port, and alternates both of tls-pass's route
// target sets. After each rewrite it waits until fresh connections are answered by the new
// targets (the second port answering or refusing as it should; for TLS, each SNI by its new
// target, by tag and certificate); that time must stay under --effect-ms for both apps. Every app
// runs --workers listeners (default 2, written into the config, so the check does not depend on
// the CPU count). A "steady" app that is never edited must keep its pids throughout.
// Prints connections, failures, rollouts and the slowest time-to-effect of both apps; exits 1 on
// any failure.
//
//   scripts/rollout-check [--rewrites 50] [--concurrency 50] [--tls-concurrency 10] [--tls-rate 20] [--workers 2] [--effect-ms 1000] [--interval-ms 1500] [--verbose]
import { spawn } from 'node:child_process';
import { once } from 'node:events';
import { mkdtemp, rename, rm, writeFile } from 'node:fs/promises';
import net from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createInterface } from 'node:readline';
import { parseArgs } from 'node:util';
import { startEchoServers } from '../ftest/echo-server.ts';
import { ping } from '../ftest/ping.ts';
import { simulate } from '../ftest/simulate.ts';
import type { Failure } from '../ftest/failure.ts';
import type { AppStatus } from '../daemon/app-supervisor.ts';
import { TLS_APP, TLS_NAMES, startTlsApp } from './rollout-check-lib/tls-app.ts';
import { tlsLoad } from './rollout-check-lib/tls-load.ts';

const DAEMON_MAIN = new URL('../daemon/main.ts', import.meta.url).pathname;

interface Options {
  rewrites: number;
  concurrency: number;
  tlsConcurrency: number;
  tlsRate: number;
  workers: number;
  effectMs: number;
  intervalMs: number;
  verbose: boolean;
}

function parseOptions(argv: string[]): Options {
  const { values } = parseArgs({
    args: argv,
    options: {
      rewrites: { type: 'string', default: '50' },
      concurrency: { type: 'string', default: '50' },
      'tls-concurrency': { type: 'string', default: '10' },
      'tls-rate': { type: 'string', default: '20' },
      workers: { type: 'string', default: '2' },
      'effect-ms': { type: 'string', default: '1000' },
      'interval-ms': { type: 'string', default: '1500' },
      verbose: { type: 'boolean', default: false },
      help: { type: 'boolean', default: false },
    },
  });
  if (values.help) {
    process.stdout.write('usage: scripts/rollout-check [--rewrites 50] [--concurrency 50] [--tls-concurrency 10] [--tls-rate 20] [--workers 2] [--effect-ms 1000] [--interval-ms 1500] [--verbose]\n');
    process.exit(0);
  }
  const int = (name: string, text: string, min: number): number => {
    const n = Number(text);
    if (!Number.isInteger(n) || n < min) throw new Error(`Invalid --${name} "${text}": expected an integer ≥ ${min}`);
    return n;
  };
  return {
    rewrites: int('rewrites', values.rewrites, 1),
    concurrency: int('concurrency', values.concurrency, 1),
    tlsConcurrency: int('tls-concurrency', values['tls-concurrency'], 1),
    tlsRate: int('tls-rate', values['tls-rate'], 0),
    workers: int('workers', values.workers, 1),
    effectMs: int('effect-ms', values['effect-ms'], 1),
    intervalMs: int('interval-ms', values['interval-ms'], 0),
    verbose: values.verbose,
  };
}

async function freePorts(n: number): Promise<number[]> {
  const servers = await Promise.all(
    Array.from({ length: n }, async () => {
      const s = net.createServer().listen({ port: 0, host: '::', ipv6Only: false });
      await once(s, 'listening');
      return s;
    }),
  );
  const ports = servers.map((s) => (s.address() as net.AddressInfo).port);
  await Promise.all(servers.map((s) => new Promise((r) => s.close(r))));
  return ports;
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));
const target = (port: number) => ({ host: '127.0.0.1', port, label: `127.0.0.1:${port}` });

/** Which target answered a fresh connection to `port` ('refused', 'failed' otherwise). */
async function probe(port: number): Promise<string> {
  const r = await ping({ target: target(port), data: 'probe', timeoutMs: 1000 });
  if (r.ok) return r.reply.toString().split(':')[0]!;
  return r.failure.kind === 'refused' ? 'refused' : `failed (${r.failure.message})`;
}

async function main(): Promise<number> {
  const opts = parseOptions(process.argv.slice(2));
  const dir = await mkdtemp(join(tmpdir(), 'fproxy-rollout-check-'));
  // First, as the likeliest to fail (it runs openssl); nothing else is running yet then.
  const tlsApp = await startTlsApp(dir).catch(async (err: unknown) => {
    await rm(dir, { recursive: true, force: true });
    throw err;
  });
  const setA = await startEchoServers({ ports: [0, 0], host: '127.0.0.1', tag: true });
  const setB = await startEchoServers({ ports: [0, 0], host: '127.0.0.1', tag: true });
  const steadyTargets = await startEchoServers({ ports: [0], host: '127.0.0.1', tag: true });
  const [mainPort, extraPort, steadyPort, tlsPort] = await freePorts(4);
  const configPath = join(dir, 'config.json');
  const sets = [setA.ports, setB.ports];
  // Workers are written out for every app: with the default (the CPU count) a 1-CPU machine
  // would run single-worker apps and the check would prove less than it says.
  const configFor = (i: number) => ({
    Apps: [
      { Name: 'rolling', Ports: i % 4 >= 2 ? [mainPort, extraPort] : [mainPort], Targets: sets[i % 2]!.map((p) => `127.0.0.1:${p}`), Workers: opts.workers, DrainTimeoutMs: 5000 },
      { Name: 'steady', Ports: [steadyPort], Targets: steadyTargets.ports.map((p) => `127.0.0.1:${p}`), Workers: opts.workers },
      tlsApp.config(i, tlsPort!, opts.workers),
    ],
  });
  const writeConfig = async (i: number) => {
    const tmp = `${configPath}.${i}.tmp`;
    await writeFile(tmp, JSON.stringify(configFor(i), null, 2));
    await rename(tmp, configPath);
  };
  await writeConfig(0);

  const daemon = spawn(process.execPath, [DAEMON_MAIN], {
    stdio: ['ignore', 'pipe', 'pipe'],
    // Spares for two rewrites: each rewrite rolls out two apps, each taking `workers` of them.
    env: { PATH: process.env.PATH ?? '/usr/bin:/bin', FPROXY_CONFIG_PATH: configPath, FPROXY_ADMIN_ADDR: '127.0.0.1:0', LOG_LEVEL: 'info', FPROXY_SPARE_LISTENERS: String(Math.min(64, 4 * opts.workers)) },
  });
  const daemonExit = once(daemon, 'exit') as Promise<[number | null, NodeJS.Signals | null]>;
  // Keep the last lines for the report; the pipe is always drained so nothing blocks on it.
  const tail: string[] = [];
  let adminPort = 0;
  createInterface({ input: daemon.stdout! }).on('line', (line) => {
    tail.push(line);
    if (tail.length > 200) tail.shift();
    if (opts.verbose) process.stderr.write(line + '\n');
    if (adminPort === 0 && line.includes('"admin endpoint listening"')) adminPort = Number(String(JSON.parse(line).admin).split(':').pop());
  });
  daemon.stderr!.on('data', (c: Buffer) => process.stderr.write(c));
  const apps = async (): Promise<AppStatus[]> => (await (await fetch(`http://127.0.0.1:${adminPort}/apps`)).json()) as AppStatus[];
  const app = async (name: string) => (await apps()).find((a) => a.name === name && a.state !== 'draining');
  const appNames = ['rolling', 'steady', TLS_APP];

  const problems: string[] = [];
  const abort = new AbortController();
  let probes = 0;
  let tlsProbes = 0;
  const effects: number[] = [];
  const tlsEffects: number[] = [];
  try {
    for (const deadline = Date.now() + 15_000; adminPort === 0 || !(await Promise.all(appNames.map(app))).every((a) => a?.state === 'running'); await sleep(25)) {
      if (Date.now() > deadline || daemon.exitCode !== null) throw new Error(`the daemon did not start its apps (${appNames.join(', ')}) within 15 s`);
    }
    const checkWorkers = async (when: string) => {
      for (const name of appNames) {
        const a = await app(name);
        if (a?.workers !== opts.workers || a.pids.length !== opts.workers) problems.push(`${when}, app ${name} runs ${a?.pids.length} of ${a?.workers} workers (wanted ${opts.workers})`);
      }
    };
    await checkWorkers('at start');
    const steadyPids = (await app('steady'))!.pids;
    const firstFailures: Failure[] = [];
    const load = simulate({
      target: target(mainPort!),
      concurrency: opts.concurrency,
      durationMs: 3_600_000,
      timeoutMs: 5000,
      signal: abort.signal,
      onError: (f) => {
        if (firstFailures.length < 10) firstFailures.push(f);
      },
    });
    const firstTlsFailures: Failure[] = [];
    const tlsRun = tlsLoad({
      port: tlsPort!,
      servernames: TLS_NAMES,
      concurrency: opts.tlsConcurrency,
      ratePerSec: opts.tlsRate,
      durationMs: 3_600_000,
      timeoutMs: 5000,
      signal: abort.signal,
      judge: tlsApp.judge,
      onError: (f) => {
        if (firstTlsFailures.length < 10) firstTlsFailures.push(f);
      },
    });

    for (let i = 1; i <= opts.rewrites; i++) {
      const wanted = new Set(sets[i % 2]!.map(String));
      const extraWanted = i % 4 >= 2;
      const tlsWanted = TLS_NAMES.map((name) => tlsApp.wantedTag(i, name));
      const writtenAt = performance.now();
      await writeConfig(i);
      if (opts.verbose) process.stderr.write(`rewrite ${i}: written at ${new Date().toISOString()}\n`);
      // Each app is probed in its own rounds: fresh connections must reach the new targets, the
      // extra port must answer or refuse as it should, and each SNI must reach its route's new
      // target, shown by its tag and its certificate.
      const [tcp, tls] = await Promise.all([
        timeToEffect(writtenAt, async () => {
          const [tag, extra] = await Promise.all([probe(mainPort!), probe(extraPort!)]);
          probes += 2;
          return { ok: wanted.has(tag) && (extraWanted ? wanted.has(extra) : extra === 'refused'), seen: `main port: ${tag}, extra port: ${extra}` };
        }),
        timeToEffect(writtenAt, async () => {
          const tags = await Promise.all(TLS_NAMES.map((name) => tlsApp.probe(tlsPort!, name)));
          tlsProbes += tags.length;
          return { ok: tags.every((tag, n) => tag === tlsWanted[n]), seen: tags.map((tag, n) => `${TLS_NAMES[n]}: ${tag}`).join(', ') };
        }),
      ]);
      const results: [string, Effect, number[], string][] = [
        ['rolling', tcp, effects, `targets ${[...wanted].join(', ')}, extra port ${extraWanted ? 'open' : 'closed'}`],
        [TLS_APP, tls, tlsEffects, TLS_NAMES.map((name, n) => `${name} → ${tlsWanted[n]}`).join(', ')],
      ];
      for (const [name, { effectMs, seen }, list, expected] of results) {
        if (effectMs === undefined) problems.push(`rewrite ${i}: app ${name}'s new config (${expected}) had no effect within 10 s; last probes: ${seen}`);
        else if (effectMs > opts.effectMs) problems.push(`rewrite ${i}: app ${name}'s new config took effect after ${Math.round(effectMs)} ms (limit ${opts.effectMs} ms)`);
        if (effectMs !== undefined) list.push(effectMs);
      }
      if (opts.verbose) process.stderr.write(`rewrite ${i}: effect after ${ms(tcp.effectMs)} (rolling), ${ms(tls.effectMs)} (${TLS_APP})\n`);
      // Let the daemon's spare listeners refill between rewrites, as between real edits.
      await sleep(Math.max(0, opts.intervalMs - (performance.now() - writtenAt)));
    }

    abort.abort();
    const [summary, tlsSummary] = await Promise.all([load, tlsRun]);
    const rolling = await app('rolling');
    const steady = await app('steady');
    const tlsStatus = await app(TLS_APP);
    await checkWorkers('at the end');
    if (JSON.stringify(steady?.pids) !== JSON.stringify(steadyPids)) problems.push(`the steady app's pids changed: ${steadyPids} → ${steady?.pids}`);
    if (rolling?.lastError) problems.push(`the rolling app reports an error: ${rolling.lastError.message}`);
    if (tlsStatus?.lastError) problems.push(`the ${TLS_APP} app reports an error: ${tlsStatus.lastError.message}`);
    if (summary.errors > 0) problems.push(`${summary.errors} connection failures: ${JSON.stringify(summary.errorsByKind)}; first: ${firstFailures.map((f) => f.message).join('; ')}`);
    if (tlsSummary.errors > 0) problems.push(`${tlsSummary.errors} TLS connection failures: ${JSON.stringify(tlsSummary.errorsByKind)}; first: ${firstTlsFailures.map((f) => f.message).join('; ')}`);
    const rollouts = rolling?.rollouts ?? 0;
    const tlsRollouts = tlsStatus?.rollouts ?? 0;
    if (rollouts < opts.rewrites) problems.push(`only ${rollouts} rollouts of the rolling app for ${opts.rewrites} rewrites`);
    if (tlsRollouts < opts.rewrites) problems.push(`only ${tlsRollouts} rollouts of the ${TLS_APP} app for ${opts.rewrites} rewrites`);

    const line = (label: string, value: string) => `${`${label}:`.padEnd(28)}${value}`;
    const effect = (xs: number[]) => `${ms(xs.length ? Math.max(...xs) : undefined)} (median ${ms(median(xs))}, limit ${opts.effectMs} ms)`;
    const byTag = Object.entries(tlsSummary.okByTag).sort().map(([tag, n]) => `${tag} ${n}`).join(', ');
    process.stdout.write(
      [
        line('connections made', `${summary.exchanges} (+ ${probes} probes)`),
        line('failures', `${summary.errors}`),
        line('tls connections made', `${tlsSummary.exchanges} (+ ${tlsProbes} probes)`),
        line('tls failures', `${tlsSummary.errors}`),
        line('rollouts', `${rollouts} (${opts.rewrites} rewrites)`),
        line('tls rollouts', `${tlsRollouts} (${opts.rewrites} rewrites)`),
        line('workers', `${opts.workers} per app (${appNames.join(', ')})`),
        line('slowest time-to-effect', effect(effects)),
        line('tls slowest time-to-effect', effect(tlsEffects)),
        line('load', `${Math.round(summary.exchangesPerSec)} exchanges/s at concurrency ${opts.concurrency}, rtt p99 ${summary.rtt.p99} ms`),
        line('tls load', `${Math.round(tlsSummary.exchangesPerSec)} handshakes+exchanges/s at concurrency ${opts.tlsConcurrency} (${opts.tlsRate ? `at most ${opts.tlsRate}/s` : 'no rate cap'}), rtt p99 ${tlsSummary.rtt.p99} ms; answered by ${byTag || 'none'}`),
      ].join('\n') + '\n',
    );
  } catch (err) {
    problems.push((err as Error).message);
  } finally {
    abort.abort();
    if (daemon.exitCode === null) daemon.kill('SIGTERM');
    let timer: NodeJS.Timeout | undefined;
    const exit = await Promise.race([daemonExit, new Promise<undefined>((r) => (timer = setTimeout(() => r(undefined), 20_000)))]);
    clearTimeout(timer);
    if (exit === undefined) {
      daemon.kill('SIGKILL');
      problems.push('the daemon did not exit within 20 s of SIGTERM');
    } else if (exit[0] !== 0) {
      problems.push(`the daemon exited with code ${exit[0]} signal ${exit[1]}`);
    }
    await Promise.all([setA.close(), setB.close(), steadyTargets.close(), tlsApp.close()]);
    await rm(dir, { recursive: true, force: true });
  }
  if (problems.length > 0) {
    process.stdout.write(`FAIL\n${problems.map((p) => `  - ${p}`).join('\n')}\n`);
    if (!opts.verbose) process.stderr.write(`last daemon log lines:\n${tail.slice(-30).join('\n')}\n`);
    return 1;
  }
  process.stdout.write('OK\n');
  return 0;
}

interface Effect {
  /** From the rewrite to the start of the first of 3 probe rounds in a row that all saw the new config; undefined after 10 s without. */
  readonly effectMs: number | undefined;
  /** What the last round saw, for the report. */
  readonly seen: string;
}

/** Runs probe rounds (each says whether it saw the new config) until the rewrite is in effect or 10 s passed. */
async function timeToEffect(writtenAt: number, round: () => Promise<{ ok: boolean; seen: string }>): Promise<Effect> {
  let seen = '';
  for (let streak = 0, streakStart = 0; performance.now() - writtenAt < 10_000; ) {
    const roundStart = performance.now();
    const r = await round();
    seen = r.seen;
    if (!r.ok) streak = 0;
    else if (streak++ === 0) streakStart = roundStart;
    if (streak === 3) return { effectMs: streakStart - writtenAt, seen };
  }
  return { effectMs: undefined, seen };
}

const ms = (x: number | undefined) => (x === undefined || Number.isNaN(x) ? 'never' : `${Math.round(x)} ms`);

function median(xs: number[]): number {
  const s = [...xs].sort((a, b) => a - b);
  return s.length ? s[Math.floor(s.length / 2)]! : NaN;
}

process.exitCode = await main().catch((err: unknown) => {
  process.stderr.write(`rollout-check: ${(err as Error).message}\n`);
  return 1;
});
