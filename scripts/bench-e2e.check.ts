// End-to-end check of scripts/bench: a very short real run of every contender and workload (1 s
// each, one run, 200 idle connections) and of --scale (3 apps), both with --json, checking the
// report's shape — not the figures. It installs haproxy, nginx (+ stream module), wrk and iperf3
// from Debian when missing and loads the machine, so it is not part of `make test` (the glob
// there is *.test.ts): run it with `make bench-check`. bench.test.ts checks parsing and
// reporting on recorded outputs instead.
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { test } from 'node:test';
import { fileURLToPath } from 'node:url';
import { defaultWorkers } from '../daemon/config/to-spec.ts';
import { listenerThreads } from '../proxy/engine/default-engine.ts';

const WRAPPER = fileURLToPath(new URL('./bench', import.meta.url));

interface Ran {
  code: number | null;
  stdout: string;
  stderr: string;
}

function bench(args: string[], timeoutMs: number): Promise<Ran> {
  return new Promise((resolve, reject) => {
    const env = { ...process.env };
    delete env.NODE_TEST_CONTEXT;
    const child = spawn('bash', [WRAPPER, ...args], { env, stdio: ['ignore', 'pipe', 'pipe'] });
    let stdout = '';
    let stderr = '';
    child.stdout.setEncoding('utf8').on('data', (d: string) => (stdout += d));
    child.stderr.setEncoding('utf8').on('data', (d: string) => (stderr += d));
    // SIGINT exercises the benchmark's own clean-up of everything it started.
    const timer = setTimeout(() => child.kill('SIGINT'), timeoutMs);
    child.on('error', reject);
    child.on('close', (code) => {
      clearTimeout(timer);
      resolve({ code, stdout, stderr });
    });
  });
}

type Num = number | null | undefined;

test('bench --json: every contender and workload, 1 s each', { timeout: 900_000 }, async () => {
  const r = await bench(['--duration', '1s', '--runs', '1', '--idle-conns', '200', '--json'], 840_000);
  assert.equal(r.code, 0, `bench exited ${r.code}\nstderr:\n${r.stderr.slice(-3000)}\nstdout:\n${r.stdout.slice(-2000)}`);
  const rep = JSON.parse(r.stdout) as {
    date: string;
    machine: { cores: number; kernel: string; node: string; haproxy: string; nginx: string };
    settings: { durationS: number; runs: number };
    contenders: string[];
    medians: Record<string, Record<string, Num>>;
    ratios: Record<string, Record<string, Record<string, Num>>>;
    samples: { run: number; workload: string; contender: string; metrics: Record<string, Num>; error?: string }[];
    errors: unknown[];
    elapsedS: number;
  };
  assert.ok(!Number.isNaN(Date.parse(rep.date)));
  assert.ok(rep.machine.cores >= 1);
  for (const k of ['kernel', 'node', 'haproxy', 'nginx'] as const) assert.ok(rep.machine[k].length > 0, `machine.${k}`);
  assert.deepEqual(rep.contenders, ['direct', 'haproxy', 'nginx', 'fproxy']);
  assert.equal(rep.settings.durationS, 1);
  assert.deepEqual(rep.errors, []);
  // 4 contenders × 4 workloads + 3 proxies × idle (direct has no proxy to hold them).
  assert.equal(rep.samples.length, 4 * 4 + 3);

  const positive = (c: string, k: string) => {
    const v = rep.medians[c]?.[k];
    assert.ok(typeof v === 'number' && v > 0, `${c} ${k} = ${v}`);
  };
  for (const c of rep.contenders) {
    for (const k of ['bulk1_gbps', 'bulk4_gbps', 'keepalive_rate', 'keepalive_p50_us', 'keepalive_p99_us', 'newconn_rate', 'newconn_p50_us', 'newconn_p99_us']) positive(c, k);
  }
  for (const c of ['haproxy', 'nginx', 'fproxy']) {
    for (const k of ['bulk1_cpu_s_per_gb', 'bulk4_cpu_s_per_gb', 'keepalive_cpu_us_per_req', 'newconn_cpu_us_per_req', 'idle_rss_mib', 'idle_pss_per_listener_mib']) positive(c, k);
    assert.equal(rep.medians[c]?.idle_conns_open, 200, `${c} held every idle connection`);
    assert.equal(typeof rep.medians[c]?.rss_per_conn_kib, 'number');
    assert.ok(typeof rep.ratios[c]?.direct?.keepalive_rate === 'number', `${c} ÷ direct`);
  }
  assert.equal(rep.medians.direct?.keepalive_cpu_us_per_req, undefined, 'direct has no proxy CPU');
  assert.equal(rep.medians.haproxy?.idle_processes, 1, 'HAProxy: one process');
  assert.ok((rep.medians.fproxy?.idle_processes ?? 0) >= 2, 'fproxy: the daemon and its listeners');
  assert.equal(rep.medians.fproxy?.idle_listeners, defaultWorkers(rep.machine.cores, listenerThreads()), 'fproxy: the default Workers');
  for (const c of ['nginx', 'fproxy']) assert.ok(typeof rep.ratios[c]?.haproxy?.newconn_rate === 'number', `${c} ÷ haproxy`);
});

test('bench --scale --json: a few apps, start-up, memory, idle CPU, one rollout', { timeout: 300_000 }, async () => {
  const r = await bench(['--scale', '--scale-apps', '3', '--scale-idle', '1s', '--json'], 240_000);
  assert.equal(r.code, 0, `bench --scale exited ${r.code}\nstderr:\n${r.stderr.slice(-3000)}\nstdout:\n${r.stdout.slice(-2000)}`);
  const rep = JSON.parse(r.stdout) as {
    ok: boolean;
    settings: { apps: number; workers: number; listenerProcesses: number };
    startup: { allRunningS: number; allPortsServingS: number };
    memory: { totalRssMiB: number; totalPssMiB: number; perAppPssMiB: number; processes: number; listeners: number; spares: number };
    idleCpu: { daemonCpuS: number };
    rollout: { app: string; runningS: number; servingNewTargetS: number; othersUntouched: number; othersChanged: string[] };
    errors: string[];
  };
  assert.deepEqual(rep.errors, []);
  assert.equal(rep.ok, true);
  assert.deepEqual(rep.settings, { ...rep.settings, apps: 3, workers: 1, listenerProcesses: 3 });
  assert.ok(rep.startup.allRunningS > 0 && rep.startup.allPortsServingS >= rep.startup.allRunningS);
  assert.equal(rep.memory.listeners, 3);
  assert.equal(rep.memory.processes, 1 + rep.memory.listeners + rep.memory.spares);
  assert.ok(rep.memory.totalPssMiB > 0 && rep.memory.totalRssMiB >= rep.memory.totalPssMiB && rep.memory.perAppPssMiB > 0);
  assert.equal(typeof rep.idleCpu.daemonCpuS, 'number');
  assert.equal(rep.rollout.app, 'app-002');
  assert.ok(rep.rollout.runningS > 0 && rep.rollout.servingNewTargetS >= rep.rollout.runningS);
  assert.equal(rep.rollout.othersUntouched, 2);
  assert.deepEqual(rep.rollout.othersChanged, []);
});

test('bench rejects an unknown contender with exit 2 and names the choices', async () => {
  const r = await bench(['--only', 'envoy'], 30_000);
  assert.equal(r.code, 2);
  assert.match(r.stderr, /Unknown --only "envoy": use direct, haproxy, nginx, fproxy/);
});
