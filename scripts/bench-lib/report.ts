// Medians over the interleaved runs, ratios to HAProxy and to direct, and the Markdown report.
import type { Machine } from './tools.ts';
import type { Metrics, WorkloadName } from './workloads.ts';

export interface Sample {
  readonly run: number;
  readonly workload: WorkloadName;
  readonly contender: string;
  readonly metrics: Metrics;
  readonly error?: string;
  readonly seconds: number;
}

interface Row {
  readonly key: string;
  readonly label: string;
  readonly higherIsBetter: boolean;
  /** A figure that only exists for proxies (CPU, memory): no ratio to direct. */
  readonly proxyOnly?: boolean;
}

export const ROWS: readonly Row[] = [
  { key: 'bulk1_gbps', label: 'bulk, 1 stream (Gbit/s)', higherIsBetter: true },
  { key: 'bulk4_gbps', label: 'bulk, 4 streams (Gbit/s)', higherIsBetter: true },
  { key: 'bulk1_cpu_s_per_gb', label: 'bulk 1 stream: proxy CPU (s/GB)', higherIsBetter: false, proxyOnly: true },
  { key: 'bulk4_cpu_s_per_gb', label: 'bulk 4 streams: proxy CPU (s/GB)', higherIsBetter: false, proxyOnly: true },
  { key: 'keepalive_rate', label: 'keep-alive (req/s)', higherIsBetter: true },
  { key: 'keepalive_p50_us', label: 'keep-alive p50 (µs)', higherIsBetter: false },
  { key: 'keepalive_p99_us', label: 'keep-alive p99 (µs)', higherIsBetter: false },
  { key: 'keepalive_cpu_us_per_req', label: 'keep-alive: proxy CPU (µs/req)', higherIsBetter: false, proxyOnly: true },
  { key: 'newconn_rate', label: 'new connections (conn/s)', higherIsBetter: true },
  { key: 'newconn_p50_us', label: 'new conn p50 (µs)', higherIsBetter: false },
  { key: 'newconn_p99_us', label: 'new conn p99 (µs)', higherIsBetter: false },
  { key: 'newconn_cpu_us_per_req', label: 'new conn: proxy CPU (µs/conn)', higherIsBetter: false, proxyOnly: true },
  { key: 'idle_rss_mib', label: 'idle RSS, all processes (MiB)', higherIsBetter: false, proxyOnly: true },
  { key: 'idle_pss_mib', label: 'idle PSS, all processes (MiB)', higherIsBetter: false, proxyOnly: true },
  { key: 'idle_pss_per_listener_mib', label: 'idle PSS per listener process (MiB)', higherIsBetter: false, proxyOnly: true },
  { key: 'idle_processes', label: 'processes (all / serving the port)', higherIsBetter: false, proxyOnly: true },
  { key: 'rss_per_conn_kib', label: 'RSS growth per idle conn (KiB)', higherIsBetter: false, proxyOnly: true },
  { key: 'idle_cpu_ms_per_s', label: 'CPU holding idle conns (ms/s)', higherIsBetter: false, proxyOnly: true },
];

// Figures kept in JSON but not in the Markdown table.
export const EXTRA_KEYS = ['bulk1_cpu_cores', 'bulk4_cpu_cores', 'keepalive_errors', 'newconn_errors', 'idle_listeners', 'idle_conns_open', 'idle_conns_failed', 'idle_open_s', 'rss_held_mib'];

export function median(xs: readonly number[]): number | null {
  if (xs.length === 0) return null;
  const s = [...xs].sort((a, b) => a - b);
  const mid = s.length >> 1;
  return s.length % 2 === 1 ? (s[mid] as number) : ((s[mid - 1] as number) + (s[mid] as number)) / 2;
}

export type Table = Record<string, Record<string, number | null>>;

export function medians(samples: readonly Sample[], contenders: readonly string[]): Table {
  const out: Table = {};
  for (const c of contenders) {
    const values = new Map<string, number[]>();
    for (const s of samples) {
      if (s.contender !== c) continue;
      for (const [k, v] of Object.entries(s.metrics)) {
        if (v === null) continue;
        const list = values.get(k) ?? [];
        list.push(v);
        values.set(k, list);
      }
    }
    out[c] = Object.fromEntries([...values].map(([k, list]) => [k, median(list)]));
  }
  return out;
}

/**
 * spreads[contender][metric] = [lowest, highest] over the runs. On a shared machine single runs
 * scatter by ±10–15 % (CPU per request above all): a goal is only as met as its spread says.
 */
export function spreads(samples: readonly Sample[], contenders: readonly string[]): Record<string, Record<string, [number, number]>> {
  const out: Record<string, Record<string, [number, number]>> = {};
  for (const c of contenders) {
    const row: Record<string, [number, number]> = {};
    for (const s of samples) {
      if (s.contender !== c) continue;
      for (const [k, v] of Object.entries(s.metrics)) {
        if (v === null) continue;
        const r = row[k];
        row[k] = r === undefined ? [v, v] : [Math.min(r[0], v), Math.max(r[1], v)];
      }
    }
    out[c] = row;
  }
  return out;
}

/** ratios[contender][ref][metric] = contender ÷ ref. */
export function ratios(med: Table, refs: readonly string[]): Record<string, Record<string, Record<string, number | null>>> {
  const out: Record<string, Record<string, Record<string, number | null>>> = {};
  for (const [c, m] of Object.entries(med)) {
    out[c] = {};
    for (const ref of refs) {
      const r = med[ref];
      if (!r || ref === c) continue;
      const row: Record<string, number | null> = {};
      for (const { key, proxyOnly } of ROWS) {
        const a = m[key];
        const b = r[key];
        if (proxyOnly && ref === 'direct') continue;
        row[key] = a == null || b == null || b === 0 ? null : Math.round((a / b) * 100) / 100;
      }
      out[c][ref] = row;
    }
  }
  return out;
}

function fmt(v: number | null | undefined): string {
  if (v === null || v === undefined) return '—';
  if (Math.abs(v) >= 1000) return Math.round(v).toLocaleString('en-US');
  if (Number.isInteger(v)) return String(v);
  if (Math.abs(v) >= 100) return v.toFixed(0);
  if (Math.abs(v) >= 10) return v.toFixed(1);
  return v.toFixed(2);
}

export interface ReportInput {
  readonly date: string;
  readonly machine: Machine;
  readonly settings: Record<string, unknown>;
  readonly contenders: readonly string[];
  readonly samples: readonly Sample[];
  readonly elapsedS: number;
  readonly notes: readonly string[];
}

export function markdown(r: ReportInput): string {
  const med = medians(r.samples, r.contenders);
  const rat = ratios(med, ['haproxy', 'direct']);
  const m = r.machine;
  const rows = ROWS.filter((row) => r.contenders.some((c) => med[c]?.[row.key] != null));
  const lines: string[] = [];
  lines.push(`## fproxy benchmark — ${r.date}`, '');
  lines.push(`Machine: ${m.cores} cores (${m.cpuModel}), ${m.memGiB} GiB, Linux ${m.kernel}; node ${m.node}, ${m.haproxy}, nginx ${m.nginx}, ${m.wrk}, ${m.iperf3}; open files ${m.nofile}.`);
  const s = r.settings;
  lines.push(
    `Settings: ${s.durationS} s per workload run, ${s.runs} interleaved run(s), medians; wrk ${s.wrkConnections} connections / ${s.wrkThreads} threads (1 s warm-up); ${s.idleConns} idle connections; ` +
      `upstreams shared by all: nginx HTTP (return 200 "ok\\n", ${s.upstreamWorkers} workers), iperf3 -s. Contenders: ${s.contenderSettings}.`,
    '',
  );
  lines.push(`| metric | ${r.contenders.join(' | ')} |`, `|---|${r.contenders.map(() => '---:').join('|')}|`);
  for (const row of rows) {
    const cell = (c: string) => (row.key === 'idle_processes' && med[c]?.idle_processes != null ? `${fmt(med[c]?.idle_processes)} / ${fmt(med[c]?.idle_listeners)}` : fmt(med[c]?.[row.key]));
    lines.push(`| ${row.label} | ${r.contenders.map(cell).join(' | ')} |`);
  }
  lines.push('');

  const cols: { c: string; ref: string }[] = [];
  for (const c of r.contenders) for (const ref of ['haproxy', 'direct']) if (c !== ref && r.contenders.includes(ref) && c !== 'direct') cols.push({ c, ref });
  if (cols.length > 0) {
    lines.push('Ratios (contender ÷ reference; ↑ = higher is better, ↓ = lower is better):', '');
    lines.push(`| metric | | ${cols.map(({ c, ref }) => `${c} ÷ ${ref}`).join(' | ')} |`, `|---|---|${cols.map(() => '---:').join('|')}|`);
    for (const row of rows) {
      if (row.key === 'idle_processes') continue;
      const cells = cols.map(({ c, ref }) => fmt(rat[c]?.[ref]?.[row.key]));
      if (cells.every((x) => x === '—')) continue;
      lines.push(`| ${row.label} | ${row.higherIsBetter ? '↑' : '↓'} | ${cells.join(' | ')} |`);
    }
    lines.push('');
  }
  // With several runs: each cell's lowest and highest run, so a ratio near a goal can be read against its scatter.
  const runs = Number(r.settings.runs ?? 1);
  if (runs > 1) {
    const spread = spreads(r.samples, r.contenders);
    lines.push(`Spread over the ${runs} runs (lowest–highest run; the medians above lie between):`, '');
    lines.push(`| metric | ${r.contenders.join(' | ')} |`, `|---|${r.contenders.map(() => '---:').join('|')}|`);
    for (const row of rows) {
      if (row.key === 'idle_processes') continue;
      const cell = (c: string) => {
        const v = spread[c]?.[row.key];
        return v === undefined ? '—' : v[0] === v[1] ? fmt(v[0]) : `${fmt(v[0])}–${fmt(v[1])}`;
      };
      lines.push(`| ${row.label} | ${r.contenders.map(cell).join(' | ')} |`);
    }
    lines.push('');
  }
  const errors = r.samples.filter((x) => x.error);
  for (const e of errors) lines.push(`- ERROR run ${e.run} ${e.workload} ${e.contender}: ${e.error}`);
  for (const n of r.notes) lines.push(`- ${n}`);
  lines.push(`- Total time: ${Math.round(r.elapsedS)} s.`);
  return lines.join('\n') + '\n';
}

export function jsonReport(r: ReportInput): unknown {
  const med = medians(r.samples, r.contenders);
  return {
    date: r.date,
    machine: r.machine,
    settings: r.settings,
    contenders: r.contenders,
    medians: med,
    spreads: spreads(r.samples, r.contenders),
    ratios: ratios(med, ['haproxy', 'direct']),
    samples: r.samples,
    errors: r.samples.filter((x) => x.error).map(({ run, workload, contender, error }) => ({ run, workload, contender, error })),
    notes: r.notes,
    elapsedS: Math.round(r.elapsedS),
  };
}
