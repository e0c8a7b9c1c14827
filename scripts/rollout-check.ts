// rollout-check: shows that config rollouts cost no connection. It starts two sets of tagged
// echo targets and the real daemon (daemon/main.ts, as a child process), keeps `simulate` running
// against the app with a new connection per exchange at --concurrency, and rewrites the config
// --rewrites times with atomic renames, alternating the app's target set and adding/removing a
// second port. After each rewrite it waits until fresh connections are answered by the new
// targets (and the second port answers or refuses as it should); that time must stay under
// --effect-ms. A "steady" app that is never edited must keep its pids throughout.
// Prints connections, failures, rollouts, the slowest time-to-effect; exits 1 on any failure.
//
//   scripts/rollout-check [--rewrites 50] [--concurrency 50] [--workers 2] [--effect-ms 1000] [--interval-ms 1500] [--verbose]
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

const DAEMON_MAIN = new URL('../daemon/main.ts', import.meta.url).pathname;

interface Options {
  rewrites: number;
  concurrency: number;
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
      workers: { type: 'string', default: '2' },
      'effect-ms': { type: 'string', default: '1000' },
      'interval-ms': { type: 'string', default: '1500' },
      verbose: { type: 'boolean', default: false },
      help: { type: 'boolean', default: false },
    },
  });
  if (values.help) {
    process.stdout.write('usage: scripts/rollout-check [--rewrites 50] [--concurrency 50] [--workers 2] [--effect-ms 1000] [--interval-ms 1500] [--verbose]\n');
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
  const setA = await startEchoServers({ ports: [0, 0], host: '127.0.0.1', tag: true });
  const setB = await startEchoServers({ ports: [0, 0], host: '127.0.0.1', tag: true });
  const steadyTargets = await startEchoServers({ ports: [0], host: '127.0.0.1', tag: true });
  const [mainPort, extraPort, steadyPort] = await freePorts(3);
  const dir = await mkdtemp(join(tmpdir(), 'fproxy-rollout-check-'));
  const configPath = join(dir, 'config.json');
  const sets = [setA.ports, setB.ports];
  const configFor = (i: number) => ({
    Apps: [
      { Name: 'rolling', Ports: i % 4 >= 2 ? [mainPort, extraPort] : [mainPort], Targets: sets[i % 2]!.map((p) => `127.0.0.1:${p}`), Workers: opts.workers, DrainTimeoutMs: 5000 },
      { Name: 'steady', Ports: [steadyPort], Targets: steadyTargets.ports.map((p) => `127.0.0.1:${p}`), Workers: 1 },
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
    // Spares for two generations of the rolling app: each rollout takes `workers` of them.
    env: { PATH: process.env.PATH ?? '/usr/bin:/bin', FPROXY_CONFIG_PATH: configPath, FPROXY_ADMIN_ADDR: '127.0.0.1:0', LOG_LEVEL: 'info', FPROXY_SPARE_LISTENERS: String(2 * opts.workers) },
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

  const problems: string[] = [];
  const abort = new AbortController();
  let summary: Awaited<ReturnType<typeof simulate>> | undefined;
  let probes = 0;
  const effects: number[] = [];
  try {
    for (const deadline = Date.now() + 15_000; adminPort === 0 || (await app('rolling'))?.state !== 'running' || (await app('steady'))?.state !== 'running'; await sleep(25)) {
      if (Date.now() > deadline || daemon.exitCode !== null) throw new Error('the daemon did not start its apps within 15 s');
    }
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

    for (let i = 1; i <= opts.rewrites; i++) {
      const wanted = new Set(sets[i % 2]!.map(String));
      const extraWanted = i % 4 >= 2;
      const writtenAt = performance.now();
      await writeConfig(i);
      if (opts.verbose) process.stderr.write(`rewrite ${i}: written at ${new Date().toISOString()}\n`);
      let effectMs: number | undefined;
      // In effect from the start of the first of 3 probe rounds in a row in which fresh
      // connections reach the new targets and the extra port answers or refuses as it should.
      for (let streak = 0, streakStart = 0; performance.now() - writtenAt < 10_000; ) {
        const roundStart = performance.now();
        const [tag, extra] = await Promise.all([probe(mainPort!), probe(extraPort!)]);
        probes += 2;
        const extraOk = extraWanted ? wanted.has(extra) : extra === 'refused';
        if (!(wanted.has(tag) && extraOk)) streak = 0;
        else if (streak++ === 0) streakStart = roundStart;
        if (streak === 3) {
          effectMs = streakStart - writtenAt;
          break;
        }
      }
      if (effectMs === undefined) problems.push(`rewrite ${i}: the new config had no effect within 10 s`);
      else if (effectMs > opts.effectMs) problems.push(`rewrite ${i}: took effect after ${Math.round(effectMs)} ms (limit ${opts.effectMs} ms)`);
      if (effectMs !== undefined) effects.push(effectMs);
      if (opts.verbose) process.stderr.write(`rewrite ${i}: effect after ${effectMs === undefined ? 'never' : Math.round(effectMs)} ms\n`);
      // Let the daemon's spare listeners refill between rewrites, as between real edits.
      await sleep(Math.max(0, opts.intervalMs - (performance.now() - writtenAt)));
    }

    abort.abort();
    summary = await load;
    const rolling = await app('rolling');
    const steady = await app('steady');
    if (JSON.stringify(steady?.pids) !== JSON.stringify(steadyPids)) problems.push(`the steady app's pids changed: ${steadyPids} → ${steady?.pids}`);
    if (rolling?.lastError) problems.push(`the rolling app reports an error: ${rolling.lastError.message}`);
    if (summary.errors > 0) problems.push(`${summary.errors} connection failures: ${JSON.stringify(summary.errorsByKind)}; first: ${firstFailures.map((f) => f.message).join('; ')}`);
    const rollouts = rolling?.rollouts ?? 0;
    if (rollouts < opts.rewrites) problems.push(`only ${rollouts} rollouts for ${opts.rewrites} rewrites`);

    const slowest = effects.length ? Math.max(...effects) : NaN;
    process.stdout.write(
      [
        `connections made:        ${summary.exchanges} (+ ${probes} probes)`,
        `failures:                ${summary.errors}`,
        `rollouts:                ${rollouts} (${opts.rewrites} rewrites)`,
        `slowest time-to-effect:  ${Math.round(slowest)} ms (median ${Math.round(median(effects))} ms, limit ${opts.effectMs} ms)`,
        `load:                    ${Math.round(summary.exchangesPerSec)} exchanges/s at concurrency ${opts.concurrency}, rtt p99 ${summary.rtt.p99} ms`,
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
    await Promise.all([setA.close(), setB.close(), steadyTargets.close()]);
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

function median(xs: number[]): number {
  const s = [...xs].sort((a, b) => a - b);
  return s.length ? s[Math.floor(s.length / 2)]! : NaN;
}

process.exitCode = await main().catch((err: unknown) => {
  process.stderr.write(`rollout-check: ${(err as Error).message}\n`);
  return 1;
});
