// The workloads, each with a fixed duration, run against one contender instance:
//   bulk1 / bulk4  iperf3 through the proxy, 1 and 4 streams → Gbit/s, proxy CPU s per GB
//   keepalive      wrk, N persistent connections, tiny body → req/s, p50, p99, proxy CPU µs/req
//   newconn        the same with "Connection: close" (one TCP connection per request) → conn/s …
//   idle           M idle connections held open → proxy RSS growth per connection, idle RSS/PSS
// Proxy CPU = utime+stime deltas (/proc/PID/stat) over all the proxy's processes, taken right
// before and after the load tool runs; memory from /proc/PID/smaps_rollup.
import { writeFileSync } from 'node:fs';
import type { Socket } from 'node:net';
import { join } from 'node:path';
import type { Instance } from './contenders.ts';
import { cpuSeconds, memOf, memSum, run, sleep, waitFor } from './proc.ts';
import { iperfMetrics, round, wrkMetrics } from './tool-output.ts';
import { echoProbe, httpProbe, iperfProbe } from './upstreams.ts';
import type { Sink } from './upstreams.ts';

export const WORKLOADS = ['bulk1', 'bulk4', 'keepalive', 'newconn', 'idle'] as const;
export type WorkloadName = (typeof WORKLOADS)[number];
export type UpstreamKind = 'iperf' | 'http' | 'sink';

export const UPSTREAM_OF: Readonly<Record<WorkloadName, UpstreamKind>> = {
  bulk1: 'iperf',
  bulk4: 'iperf',
  keepalive: 'http',
  newconn: 'http',
  idle: 'sink',
};

export type Metrics = Record<string, number | null>;

export interface WorkloadContext {
  readonly durationS: number;
  readonly dir: string;
  readonly wrkConnections: number;
  readonly wrkThreads: number;
  readonly idleConns: number;
  readonly sink?: Sink;
  readonly log: (s: string) => void;
}

/** Does a request through port reach the upstream and come back? */
export async function probe(kind: UpstreamKind, port: number): Promise<boolean> {
  switch (kind) {
    case 'iperf':
      return iperfProbe(port);
    case 'http':
      return httpProbe(port);
    case 'sink': {
      const s = await echoProbe(port);
      s?.destroy();
      return s !== undefined;
    }
  }
}

export async function measure(w: WorkloadName, inst: Instance, ctx: WorkloadContext): Promise<Metrics> {
  switch (w) {
    case 'bulk1':
      return bulk(inst, ctx, 1);
    case 'bulk4':
      return bulk(inst, ctx, 4);
    case 'keepalive':
      return wrk(inst, ctx, false);
    case 'newconn':
      return wrk(inst, ctx, true);
    case 'idle':
      return idle(inst, ctx);
  }
}

/** CPU seconds of the instance's processes during fn (the pid set is taken before). */
async function withCpu<T>(inst: Instance, fn: () => Promise<T>): Promise<{ value: T; cpuS: number | null }> {
  const pids = inst.pids();
  const before = cpuSeconds(pids);
  const value = await fn();
  const cpuS = pids.length > 0 ? cpuSeconds(pids) - before : null;
  return { value, cpuS };
}


// ---- bulk: iperf3 ----

async function bulk(inst: Instance, ctx: WorkloadContext, streams: number): Promise<Metrics> {
  const args = ['-c', '127.0.0.1', '-p', String(inst.port), '-t', String(ctx.durationS), '-P', String(streams), '-J', '--connect-timeout', '3000'];
  // An iperf3 server serves one test at a time: the probe's test may still be closing on the
  // server side (its close travels through the proxy); retry "busy" the same way for everyone.
  let attempt = 0;
  const once = () => run('iperf3', args, (ctx.durationS + 20) * 1000);
  const { value: r, cpuS } = await withCpu(inst, async () => {
    for (;;) {
      const t = await once();
      if (!/server is busy/.test(t.stdout) || ++attempt >= 5) return t;
      await sleep(500);
    }
  });
  return iperfMetrics(r, streams, cpuS);
}

// ---- keepalive / newconn: wrk ----

const WRK_LUA = `done = function(summary, latency, requests)
  local e = summary.errors
  io.write(string.format('BENCHJSON {"requests":%d,"duration_us":%d,"bytes":%d,"connect":%d,"read":%d,"write":%d,"status":%d,"timeout":%d,"p50_us":%.1f,"p90_us":%.1f,"p99_us":%.1f,"max_us":%.1f,"mean_us":%.1f}\\n',
    summary.requests, summary.duration, summary.bytes, e.connect, e.read, e.write, e.status, e.timeout,
    latency:percentile(50), latency:percentile(90), latency:percentile(99), latency.max, latency.mean))
end
`;

function wrkArgs(inst: Instance, ctx: WorkloadContext, close: boolean, seconds: number): string[] {
  const script = join(ctx.dir, 'wrk-report.lua');
  writeFileSync(script, WRK_LUA);
  const args = ['-t', String(ctx.wrkThreads), '-c', String(ctx.wrkConnections), '-d', `${seconds}s`, '--timeout', '5s', '-s', script];
  if (close) args.push('-H', 'Connection: close');
  args.push(`http://127.0.0.1:${inst.port}/`);
  return args;
}

async function wrk(inst: Instance, ctx: WorkloadContext, close: boolean): Promise<Metrics> {
  // 1 s warm-up, not measured (same for every contender: JIT, caches, accept paths).
  await run('wrk', wrkArgs(inst, ctx, close, 1), 15_000);
  const args = wrkArgs(inst, ctx, close, ctx.durationS);
  const { value: r, cpuS } = await withCpu(inst, () => run('wrk', args, (ctx.durationS + 20) * 1000));
  return wrkMetrics(r, close, cpuS);
}

// ---- idle connections ----

async function idle(inst: Instance, ctx: WorkloadContext): Promise<Metrics> {
  const sink = ctx.sink;
  if (!sink) throw new Error('idle workload needs the sink upstream');
  const pids = inst.pids();
  const listeners = await inst.listenerPids();
  await sleep(500);
  const base = memSum(pids);
  const pssPerListener = listeners.length > 0 ? listeners.reduce((a, p) => a + memOf(p).pssKiB, 0) / listeners.length : 0;

  const sockets: Socket[] = [];
  let failed = 0;
  const t0 = performance.now();
  try {
    // Bounded concurrency: 200 connects in flight, each a full round trip through the proxy.
    let next = 0;
    const deadline = Date.now() + 120_000;
    const worker = async () => {
      while (next < ctx.idleConns && Date.now() < deadline) {
        next++;
        const s = await echoProbe(inst.port, 10_000);
        if (s) sockets.push(s);
        else failed++;
      }
    };
    await Promise.all(Array.from({ length: 200 }, worker));
    const openS = (performance.now() - t0) / 1000;
    if (sockets.length === 0) throw new Error(`no idle connection could be opened (${failed} failed)`);
    await waitFor('the sink to hold every idle connection', 15_000, () => (sink.open() >= sockets.length ? true : undefined));
    await sleep(1000);
    const held = memSum(pids);
    // Hold them for the workload's duration: the proxy's CPU should stay near zero.
    const before = cpuSeconds(pids);
    await sleep(ctx.durationS * 1000);
    const idleCpuS = cpuSeconds(pids) - before;
    const end = memSum(pids);
    const rssGrowth = Math.max(held.rssKiB, end.rssKiB) - base.rssKiB;
    return {
      idle_rss_mib: round(base.rssKiB / 1024, 1),
      idle_pss_mib: round(base.pssKiB / 1024, 1),
      idle_pss_per_listener_mib: round(pssPerListener / 1024, 1),
      idle_processes: pids.length,
      idle_listeners: listeners.length,
      idle_conns_open: sockets.length,
      idle_conns_failed: failed,
      idle_open_s: round(openS, 2),
      rss_per_conn_kib: round(rssGrowth / sockets.length, 2),
      rss_held_mib: round(end.rssKiB / 1024, 1),
      idle_cpu_ms_per_s: round((idleCpuS * 1000) / ctx.durationS, 1),
    };
  } finally {
    for (const s of sockets) s.destroy();
    await waitFor('the idle connections to close', 15_000, () => (sink.open() === 0 ? true : undefined)).catch(() => {});
  }
}
