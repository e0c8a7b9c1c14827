// `fproxy status [--admin ADDR] [--json] [--app NAME]`: what the running daemon is doing, from its
// GET /stats — a table like `kubectl get` (app, generation, state, workers, ports, active
// connections, connections/s over the last 10 s, targets up/total, last error), or with --app one
// app's targets (health, active connections, attempts by result) and its connections by outcome.
// A daemon that does not answer gets one clear line and exit code 1.
import { DEFAULT_ADMIN_ADDR, parseAdminAddr } from './admin-server.ts';
import type { DaemonStatus } from './daemon.ts';
import type { AppStats, RolloutRecord } from './metrics/daemon-metrics.ts';

/** GET /stats. */
export interface StatsResponse {
  readonly pid: number;
  readonly at: string;
  readonly config: DaemonStatus['config'];
  readonly apps: AppStats[];
  readonly rollouts: RolloutRecord[];
}

export interface StatusOptions {
  readonly admin?: string;
  readonly json?: boolean;
  readonly app?: string;
}

export interface StatusOutput {
  log: (s: string) => void;
  error: (s: string) => void;
}

const CONSOLE: StatusOutput = { log: (s) => console.log(s), error: (s) => console.error(s) };

export async function runStatus(options: StatusOptions, out: StatusOutput = CONSOLE, env: NodeJS.ProcessEnv = process.env): Promise<number> {
  const raw = options.admin ?? env.FPROXY_ADMIN_ADDR ?? DEFAULT_ADMIN_ADDR;
  let url: string;
  try {
    const a = parseAdminAddr(raw);
    const host = a.host === '0.0.0.0' ? '127.0.0.1' : a.host === '::' ? '::1' : a.host;
    url = `http://${host.includes(':') ? `[${host}]` : host}:${a.port}/stats`;
  } catch (err) {
    out.error((err as Error).message.replace('FPROXY_ADMIN_ADDR', '--admin / FPROXY_ADMIN_ADDR'));
    return 2;
  }
  let stats: StatsResponse;
  try {
    const res = await fetch(url, { signal: AbortSignal.timeout(5000) });
    if (!res.ok) throw new Error(`HTTP ${res.status} from ${url}`);
    stats = (await res.json()) as StatsResponse;
  } catch (err) {
    const cause = (err as { cause?: { code?: string } }).cause?.code ?? (err as Error).name;
    const why = cause === 'ECONNREFUSED' ? 'nothing listens there' : cause === 'TimeoutError' ? 'no answer within 5 s' : (err as Error).message;
    out.error(`fproxy daemon is not running at ${raw} (${why}). Start it with \`npx fproxy\`, or point --admin (or FPROXY_ADMIN_ADDR) at its admin address.`);
    return 1;
  }
  if (options.app !== undefined) {
    const app = stats.apps.find((a) => a.name === options.app);
    if (app === undefined) {
      out.error(`No app named "${options.app}"; apps: ${stats.apps.map((a) => a.name).join(', ') || '(none)'}`);
      return 1;
    }
    out.log(options.json ? JSON.stringify(app, null, 2) : formatApp(app));
    return 0;
  }
  out.log(options.json ? JSON.stringify(stats, null, 2) : formatStatus(stats));
  return 0;
}

/** Columns padded to their widest cell, two spaces apart (as kubectl get). */
export function table(rows: string[][]): string {
  const widths = rows[0]!.map((_, i) => Math.max(...rows.map((r) => (r[i] ?? '').length)));
  return rows.map((r) => r.map((c, i) => (i === r.length - 1 ? c : c.padEnd(widths[i]!))).join('  ').trimEnd()).join('\n');
}

export function formatStatus(stats: StatsResponse): string {
  const rows = [['APP', 'GEN', 'STATE', 'WORKERS', 'PORTS', 'ACTIVE', 'CONN/S', 'TARGETS', 'LAST ERROR']];
  for (const a of stats.apps) {
    rows.push([a.name, String(a.generation), a.state, `${a.pids.length}/${a.workers}`, a.ports.join(','), String(a.activeConnections), rate(a.connPerSec), `${a.targetsUp}/${a.targetsTotal}`, a.lastError ? `${a.lastError.code}: ${oneLine(a.lastError.message)}` : '-']);
  }
  const lines = [stats.apps.length > 0 ? table(rows) : 'No apps.'];
  if (stats.config.error) lines.push('', `Config error (${stats.config.error.at}), the last good config keeps running:`, stats.config.error.message);
  return lines.join('\n');
}

export function formatApp(a: AppStats): string {
  const head = `${a.name}: generation ${a.generation}, ${a.state}, ${a.pids.length}/${a.workers} workers, ports ${a.ports.join(',')}, ${a.activeConnections} active, ${rate(a.connPerSec)} conn/s, ${a.connections} closed`;
  const rows = [['TARGET', 'HEALTH', 'ACTIVE', 'OK', 'REFUSED', 'TIMEOUT', 'UNREACHABLE', 'DNS']];
  for (const t of a.targetStats) {
    const n = (k: string) => String(t.attempts[k] ?? 0);
    rows.push([t.target, t.state, String(t.activeConnections), n('ok'), n('refused'), n('timeout'), n('unreachable'), n('dns')]);
  }
  const outcomes = Object.entries(a.outcomes).map(([k, v]) => `${k}=${v}`).join(' ') || '-';
  const failures = Object.entries(a.failures).map(([k, v]) => `${k}=${v}`).join(' ') || '-';
  const lines = [head, '', table(rows), '', `connections by outcome: ${outcomes}`, `failures by code: ${failures}`];
  if (a.lastError) lines.push(`last error: ${a.lastError.code}: ${oneLine(a.lastError.message)} (${a.lastError.at})`);
  return lines.join('\n');
}

function rate(n: number): string {
  return n >= 100 ? String(Math.round(n)) : n.toFixed(1);
}

function oneLine(s: string): string {
  const first = s.split('\n')[0]!;
  return first.length > 80 ? `${first.slice(0, 77)}...` : first;
}
