// Parsing of the load tools' output into bench metrics: iperf3 -J (bulk) and wrk with the bench's
// Lua `done` hook (a `BENCHJSON {…}` line). Pure, so bench.test.ts checks it on recorded outputs
// (bench-lib/fixtures/) inside `make test`, while the real runs stay in `make bench`.
import type { Metrics } from './workloads.ts';

export interface ToolRun {
  readonly code: number | string | null;
  readonly stdout: string;
  readonly stderr: string;
}

export function round(x: number | null, digits: number): number | null {
  if (x === null || !Number.isFinite(x)) return null;
  const f = 10 ** digits;
  return Math.round(x * f) / f;
}

interface IperfJson {
  error?: string;
  end?: { sum_received?: { bytes: number; seconds: number; bits_per_second: number } };
}

/** `bulk<streams>_*` metrics from one iperf3 -J run; `cpuS` is the proxy's CPU over it (null: none). Throws on a failed run. */
export function iperfMetrics(r: ToolRun, streams: number, cpuS: number | null): Metrics {
  let json: IperfJson;
  try {
    json = JSON.parse(r.stdout) as IperfJson;
  } catch {
    throw new Error(`iperf3 exited with ${r.code} without JSON: ${(r.stderr || r.stdout).slice(0, 300)}`);
  }
  const sum = json.end?.sum_received;
  if (json.error || !sum) throw new Error(`iperf3 failed: ${json.error ?? 'no sum_received'}`);
  const gb = sum.bytes / 1e9;
  const p = `bulk${streams}`;
  return {
    [`${p}_gbps`]: round(sum.bits_per_second / 1e9, 2),
    [`${p}_cpu_s_per_gb`]: cpuS === null ? null : round(cpuS / gb, 3),
    [`${p}_cpu_cores`]: cpuS === null ? null : round(cpuS / sum.seconds, 2),
  };
}

interface WrkJson {
  requests: number;
  duration_us: number;
  connect: number;
  read: number;
  write: number;
  status: number;
  timeout: number;
  p50_us: number;
  p99_us: number;
}

/** `keepalive_*` (or `newconn_*` with `close`) metrics from one wrk run's BENCHJSON line. Throws on a failed run. */
export function wrkMetrics(r: ToolRun, close: boolean, cpuS: number | null): Metrics {
  const line = r.stdout.split('\n').find((l) => l.startsWith('BENCHJSON '));
  if (!line) throw new Error(`wrk exited with ${r.code} without a report: ${(r.stderr || r.stdout).slice(0, 300)}`);
  const j = JSON.parse(line.slice('BENCHJSON '.length)) as WrkJson;
  const errors = j.connect + j.read + j.write + j.status + j.timeout;
  if (j.requests === 0) throw new Error(`wrk completed no request (errors: ${errors})`);
  const p = close ? 'newconn' : 'keepalive';
  return {
    [`${p}_rate`]: Math.round(j.requests / (j.duration_us / 1e6)),
    [`${p}_p50_us`]: round(j.p50_us, 0),
    [`${p}_p99_us`]: round(j.p99_us, 0),
    [`${p}_cpu_us_per_req`]: cpuS === null ? null : round((cpuS * 1e6) / j.requests, 1),
    [`${p}_errors`]: errors,
  };
}
