// The CPU cost of metrics and of the access log, as an interleaved A/B: for each run, each variant
// serves the same load through `fproxy listen` (one listener process) to a local echo target, and
// the listener's CPU time (utime + stime from /proc/PID/stat) is divided by the connections served.
// Variants: "before" (a checkout of the tree without metrics, given with --before DIR), "metrics"
// (this tree), "metrics+access-log" (this tree, AccessLog on, to a file via FPROXY_ACCESS_LOG).
// Usage: node scripts/metrics-cost.ts --before DIR [--runs 3] [-n 20000] [-c 50] [--port 25001] [--target-port 25101]
//          [--variants before,metrics,metrics+access-log] [--workloads conn,keep]
// Prints one line per run and the medians; loopback only. The order of the variants rotates per run.
import { execFile, spawn } from 'node:child_process';
import type { ChildProcess } from 'node:child_process';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { readFileSync } from 'node:fs';
import net from 'node:net';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { promisify } from 'node:util';

const args = process.argv.slice(2);
const opt = (name: string, def: string) => {
  const i = args.indexOf(name);
  return i >= 0 ? args[i + 1]! : def;
};
const before = opt('--before', '');
if (before === '') {
  console.error('usage: node scripts/metrics-cost.ts --before DIR (a checkout of the tree before metrics, with node_modules)');
  process.exit(2);
}
const runs = Number(opt('--runs', '3'));
const n = Number(opt('-n', '20000'));
const c = Number(opt('-c', '50'));
const port = Number(opt('--port', '25001'));
const targetPort = Number(opt('--target-port', '25101'));
const here = resolve(new URL('..', import.meta.url).pathname);
const node = process.execPath;
const TICK_MS = 1000 / 100; // USER_HZ is 100 on Linux

interface Variant { name: string; tree: string; app: Record<string, unknown>; env: Record<string, string> }
const dir = await mkdtemp(join(tmpdir(), 'fproxy-cost-'));
const base = { Name: 'bench', Ports: [port], Targets: [`127.0.0.1:${targetPort}`] };
const wanted = opt('--variants', 'before,metrics,metrics+access-log').split(',');
const workloads = opt('--workloads', 'conn,keep').split(',');
const all: Variant[] = [
  { name: 'before', tree: resolve(before), app: base, env: {} },
  { name: 'metrics', tree: here, app: base, env: {} },
  { name: 'metrics+access-log', tree: here, app: { ...base, AccessLog: true }, env: { FPROXY_ACCESS_LOG: join(dir, 'access.log') } },
];
const variants = all.filter((v) => wanted.includes(v.name));

function cpuTicks(pid: number): number {
  const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
  const f = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
  return Number(f[11]) + Number(f[12]); // utime + stime
}

async function waitPort(p: number, ms = 15_000): Promise<void> {
  const deadline = Date.now() + ms;
  for (;;) {
    const ok = await new Promise<boolean>((r) => {
      const s = net.connect(p, '127.0.0.1', () => { s.destroy(); r(true); });
      s.on('error', () => r(false));
    });
    if (ok) return;
    if (Date.now() > deadline) throw new Error(`port ${p} not accepting after ${ms} ms`);
    await new Promise((r) => setTimeout(r, 50));
  }
}

async function stop(child: ChildProcess): Promise<void> {
  if (child.exitCode !== null) return;
  child.kill('SIGTERM');
  await new Promise((r) => child.once('exit', r));
}

const target = spawn(node, [join(here, 'bin/ftest.ts'), 'serve', String(targetPort)], { stdio: 'ignore' });
await waitPort(targetPort);
const results = new Map<string, { conn: number[]; keep: number[] }>(variants.map((v) => [v.name, { conn: [], keep: [] }]));
try {
  for (let run = 1; run <= runs; run++) {
    // Rotate the order each run: no variant always runs first (or right after the heaviest one).
    const order = variants.map((_, i) => variants[(i + run - 1) % variants.length]!);
    for (const v of order) {
      const config = join(dir, `${v.name}.json`);
      await writeFile(config, JSON.stringify({ Apps: [v.app] }));
      const listener = spawn(node, [join(v.tree, 'bin/fproxy.ts'), 'listen', '--config', config, '--app', 'bench'], {
        env: { PATH: process.env.PATH, LOG_LEVEL: 'info', ...v.env }, stdio: ['ignore', 'ignore', 'inherit'],
      });
      await waitPort(port);
      const row: string[] = [];
      for (const [label, extra] of ([['conn', []], ['keep', ['--keepalive']]] as const).filter(([l]) => workloads.includes(l))) {
        const t0 = cpuTicks(listener.pid!);
        const { stdout } = await promisify(execFile)(node, [join(here, 'bin/ftest.ts'), 'simulate', `127.0.0.1:${port}`, '-c', String(c), '-n', String(n), '--json', ...extra], { maxBuffer: 1 << 24 });
        const ticks = cpuTicks(listener.pid!) - t0;
        const summary = JSON.parse(stdout) as { ok: number; errors: number; exchangesPerSec: number };
        const usPer = (ticks * TICK_MS * 1000) / summary.ok;
        results.get(v.name)![label].push(usPer);
        row.push(`${label}: ${usPer.toFixed(1)} µs CPU/request (${summary.ok} ok, ${summary.errors} errors, ${Math.round(summary.exchangesPerSec)}/s)`);
      }
      console.log(`run ${run} ${v.name.padEnd(20)} ${row.join('  ')}`);
      await stop(listener);
    }
  }
} finally {
  await stop(target);
  await rm(dir, { recursive: true, force: true });
}
const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)]!;
const ref = results.get('before') ?? results.values().next().value!;
console.log(`\nmedians over ${runs} runs (-c ${c} -n ${n}), listener CPU per request:`);
for (const [name, r] of results) {
  const d = (x: number, y: number) => `${x >= y ? '+' : ''}${(((x - y) / y) * 100).toFixed(1)} %`;
  const part = (label: 'conn' | 'keep', what: string) => (r[label].length > 0 ? `${what} ${median(r[label]).toFixed(1)} µs (${d(median(r[label]), median(ref[label]))})` : '');
  console.log(`${name.padEnd(20)} ${part('conn', 'new connection')}  ${part('keep', 'keep-alive')}`.trimEnd());
}
