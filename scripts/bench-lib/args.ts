// Command-line flags of scripts/bench.ts (node:util parseArgs), validated with messages that
// name the value and the fix.
import { parseArgs } from 'node:util';
import { CONTENDERS, DEFAULT_CONTENDERS } from './contenders.ts';
import type { ContenderName } from './contenders.ts';
import { WORKLOADS } from './workloads.ts';
import type { WorkloadName } from './workloads.ts';

export const USAGE = `Usage: scripts/bench [flags]

Contenders (same upstreams, same load, interleaved runs, medians):
  direct (no proxy), haproxy (mode tcp, nbthread = cores), nginx (stream, worker_processes = cores),
  fproxy (the daemon with a one-app config, default settings)

Flags:
  --duration 10s          length of each workload run (whole seconds; 500ms → 1s)
  --runs 3                interleaved repetitions; the report shows medians
  --only a,b              contender subset (${CONTENDERS.join(',')})
  --workloads a,b         bulk,keepalive,newconn,idle (bulk = bulk1 + bulk4; default all)
  --idle-conns 5000       idle connections held through each proxy
  --wrk-connections 50    wrk connections for keepalive / newconn
  --json                  print a JSON report instead of Markdown
  --keep-tmp              keep the temp dir (configs, logs) and print its path
  --scale                 run the 200-app daemon scale test instead (fproxy only)
  --scale-apps 200        apps in the scale config (2 ports each)
  --scale-workers 1       "Workers" per app in the scale config
  --scale-idle 30s        how long to measure the daemon's CPU at idle
  -h, --help

Default run: 19 measurements (4 contenders x 4 workloads + 3 proxies x idle) x 3 runs of 10 s
≈ 12 min on 2 cores. --scale with 200 apps: ~5 min (mostly starting 200 listeners).
`;

export interface Options {
  readonly durationS: number;
  readonly runs: number;
  readonly contenders: readonly ContenderName[];
  readonly workloads: readonly WorkloadName[];
  readonly idleConns: number;
  readonly wrkConnections: number;
  readonly json: boolean;
  readonly keepTmp: boolean;
  readonly scale: boolean;
  readonly scaleApps: number;
  readonly scaleWorkers: number;
  readonly scaleIdleS: number;
  readonly help: boolean;
}

export class UsageError extends Error {}

/** "10s", "1m", "500ms", "10" (seconds) → whole seconds, at least 1. */
export function parseDurationS(raw: string, flag: string): number {
  const m = /^(\d+(?:\.\d+)?)(ms|s|m)?$/.exec(raw.trim());
  if (!m) throw new UsageError(`Invalid ${flag} "${raw}": use e.g. 10s, 1m or 500ms`);
  const n = Number(m[1]);
  const s = m[2] === 'ms' ? n / 1000 : m[2] === 'm' ? n * 60 : n;
  return Math.max(1, Math.round(s));
}

function positiveInt(raw: string, flag: string): number {
  if (!/^\d+$/.test(raw) || Number(raw) < 1) throw new UsageError(`Invalid ${flag} "${raw}": use a whole number ≥ 1`);
  return Number(raw);
}

function list<T extends string>(raw: string, allowed: readonly string[], flag: string, expand: Record<string, readonly T[]> = {}): T[] {
  const out: T[] = [];
  for (const item of raw.split(',').map((x) => x.trim()).filter(Boolean)) {
    const expanded = expand[item];
    if (expanded) out.push(...expanded);
    else if (allowed.includes(item)) out.push(item as T);
    else throw new UsageError(`Unknown ${flag} "${item}": use ${[...allowed, ...Object.keys(expand)].join(', ')}`);
  }
  if (out.length === 0) throw new UsageError(`${flag} is empty`);
  return [...new Set(out)];
}

export function parseOptions(argv: readonly string[]): Options {
  const { values } = parseArgs({
    args: [...argv],
    strict: true,
    allowPositionals: false,
    options: {
      duration: { type: 'string', default: '10s' },
      runs: { type: 'string', default: '3' },
      only: { type: 'string' },
      workloads: { type: 'string' },
      'idle-conns': { type: 'string', default: '5000' },
      'wrk-connections': { type: 'string', default: '50' },
      json: { type: 'boolean', default: false },
      'keep-tmp': { type: 'boolean', default: false },
      scale: { type: 'boolean', default: false },
      'scale-apps': { type: 'string', default: '200' },
      'scale-workers': { type: 'string', default: '1' },
      'scale-idle': { type: 'string', default: '30s' },
      help: { type: 'boolean', short: 'h', default: false },
    },
  });
  // Keep the report's column order whatever order --only lists them in.
  const picked = values.only ? list<ContenderName>(values.only, CONTENDERS, '--only') : [...DEFAULT_CONTENDERS];
  return {
    durationS: parseDurationS(values.duration, '--duration'),
    runs: positiveInt(values.runs, '--runs'),
    contenders: CONTENDERS.filter((c) => picked.includes(c)),
    workloads: values.workloads
      ? WORKLOADS.filter((w) => list<WorkloadName>(values.workloads as string, WORKLOADS, '--workloads', { bulk: ['bulk1', 'bulk4'] }).includes(w))
      : [...WORKLOADS],
    idleConns: positiveInt(values['idle-conns'], '--idle-conns'),
    wrkConnections: positiveInt(values['wrk-connections'], '--wrk-connections'),
    json: values.json,
    keepTmp: values['keep-tmp'],
    scale: values.scale,
    scaleApps: positiveInt(values['scale-apps'], '--scale-apps'),
    scaleWorkers: positiveInt(values['scale-workers'], '--scale-workers'),
    scaleIdleS: parseDurationS(values['scale-idle'], '--scale-idle'),
    help: values.help,
  };
}
