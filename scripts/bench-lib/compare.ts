// The comparison: for each run, for each workload, each contender in turn (the order rotates
// every run), a fresh contender instance in front of the shared upstream, a readiness check
// (its port accepts AND a request through it succeeds), then the measurement.
// One failed measurement is recorded and reported; it does not stop the others.
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import type { Options } from './args.ts';
import { startContender } from './contenders.ts';
import type { ContenderName, Instance } from './contenders.ts';
import { waitFor } from './proc.ts';
import type { Sample } from './report.ts';
import type { Machine } from './tools.ts';
import { canConnect, startHttpUpstream, startIperfServer, startSink } from './upstreams.ts';
import type { Sink, Upstream } from './upstreams.ts';
import { UPSTREAM_OF, measure, probe } from './workloads.ts';
import type { Metrics, WorkloadName } from './workloads.ts';

export interface CompareResult {
  readonly samples: Sample[];
  readonly settings: Record<string, unknown>;
  readonly notes: string[];
}

/** Seconds one measurement takes beyond its duration (start, readiness, warm-up, stop). */
const OVERHEAD_S: Readonly<Record<WorkloadName, number>> = { bulk1: 1, bulk4: 1, keepalive: 2, newconn: 2, idle: 3 };

export function plannedMeasurements(o: Options): { contender: ContenderName; workload: WorkloadName }[] {
  const out: { contender: ContenderName; workload: WorkloadName }[] = [];
  for (const workload of o.workloads) {
    for (const contender of o.contenders) {
      // Direct has no proxy process: nothing to measure while connections sit idle.
      if (workload === 'idle' && contender === 'direct') continue;
      out.push({ contender, workload });
    }
  }
  return out;
}

export function estimateSeconds(o: Options): number {
  let s = 5;
  for (const m of plannedMeasurements(o)) s += o.durationS + OVERHEAD_S[m.workload] + (m.contender.startsWith('fproxy') ? 2 : 0);
  return s * o.runs;
}

export async function compare(o: Options, machine: Machine, tmp: string, log: (s: string) => void): Promise<CompareResult> {
  const cores = machine.cores;
  const samples: Sample[] = [];
  const notes: string[] = [];
  const needHttp = o.workloads.some((w) => UPSTREAM_OF[w] === 'http');
  const http = needHttp ? await startHttpUpstream(tmp, cores) : undefined;
  try {
    for (let runNo = 1; runNo <= o.runs; runNo++) {
      const shift = (runNo - 1) % o.contenders.length;
      const order = [...o.contenders.slice(shift), ...o.contenders.slice(0, shift)];
      for (const workload of o.workloads) {
        for (const contender of order) {
          if (workload === 'idle' && contender === 'direct') continue;
          const t0 = performance.now();
          const label = `[run ${runNo}/${o.runs}] ${workload.padEnd(9)} ${contender.padEnd(7)}`;
          try {
            const metrics = await measureOne(contender, workload, runNo, o, cores, tmp, http);
            const seconds = (performance.now() - t0) / 1000;
            samples.push({ run: runNo, workload, contender, metrics, seconds });
            log(`${label} ${summary(metrics)}`);
          } catch (err) {
            const seconds = (performance.now() - t0) / 1000;
            const error = (err as Error).message;
            samples.push({ run: runNo, workload, contender, metrics: {}, error, seconds });
            log(`${label} ERROR ${error}`);
          }
        }
      }
    }
  } finally {
    await http?.stop();
  }
  if (o.contenders.includes('fproxy')) {
    notes.push('fproxy runs with its default settings (one app, the default Workers — CPUs ÷ 2 with the native engine, CPUs with the JS engine — plus the spare listeners the daemon forks ahead of need); its processes are the daemon and all its children; its stdout log goes to a file. HAProxy and nginx have no access log configured.');
  }
  if (o.contenders.includes('fproxy-1w')) notes.push('fproxy-1w: the same app with Workers 1 and FPROXY_ENGINE_THREADS = CPUs (one listener process, an engine loop thread per core).');
  notes.push('wrk latency is from writing a request to reading its response (connect time excluded); proxy CPU is utime+stime of all its processes during the measured run.');
  return {
    samples,
    notes,
    settings: {
      durationS: o.durationS,
      runs: o.runs,
      wrkConnections: o.wrkConnections,
      wrkThreads: cores,
      idleConns: o.idleConns,
      upstreamWorkers: cores,
      workloads: o.workloads,
      contenderSettings: `HAProxy mode tcp, nbthread ${cores}; nginx stream, worker_processes ${cores}; fproxy daemon defaults (one app, default Workers)`,
    },
  };
}

function summary(m: Metrics): string {
  return Object.entries(m)
    .filter(([k]) => !k.endsWith('_errors') || m[k] !== 0)
    .slice(0, 6)
    .map(([k, v]) => `${k}=${v}`)
    .join(' ');
}

async function measureOne(
  contender: ContenderName,
  workload: WorkloadName,
  runNo: number,
  o: Options,
  cores: number,
  tmp: string,
  http: Upstream | undefined,
): Promise<Metrics> {
  const kind = UPSTREAM_OF[workload];
  const dir = join(tmp, `run${runNo}-${workload}-${contender}`);
  let own: Upstream | undefined;
  let sink: Sink | undefined;
  let inst: Instance | undefined;
  try {
    let upstream: Upstream;
    if (kind === 'http') upstream = http as Upstream;
    else if (kind === 'iperf') upstream = own = await startIperfServer();
    else upstream = own = sink = await startSink();
    inst = await startContender(contender, { dir, upstreamPort: upstream.port, cores });
    const i = inst;
    await waitFor(`${contender} to serve port ${i.port}`, 60_000, async () => {
      const dead = i.exited();
      if (dead) throw new Error(`${contender} ${dead}${logTail(i)}`);
      if (!(await canConnect(i.port)) || !(await probe(kind, i.port))) return undefined;
      return (await (i.ready?.() ?? true)) ? true : undefined;
    }, 100);
    return await measure(workload, i, {
      durationS: o.durationS,
      dir,
      wrkConnections: o.wrkConnections,
      wrkThreads: cores,
      idleConns: o.idleConns,
      sink,
      log: () => {},
    });
  } catch (err) {
    if (inst && !(err as Error).message.includes('log:')) (err as Error).message += logTail(inst);
    throw err;
  } finally {
    await inst?.stop();
    await own?.stop();
  }
}

function logTail(inst: Instance): string {
  for (const path of inst.logs) {
    try {
      const lines = readFileSync(path, 'utf8').trim().split('\n').slice(-3).join(' | ');
      if (lines) return ` (log: ${lines.slice(0, 400)})`;
    } catch {
      // no log yet
    }
  }
  return '';
}
