// The admin API's thin command-line clients (`fproxy apps`, `fproxy targets …`, `fproxy reload`):
// one HTTP request each to the daemon's admin address (--admin, else FPROXY_ADMIN_ADDR, else
// 127.0.0.1:9900), the token from FPROXY_ADMIN_TOKEN or FPROXY_ADMIN_TOKEN_FILE as the daemon reads
// it, and the server's problem message printed as it is (with every issue).
// Exit codes: 0 done; 1 the daemon refused or failed (its message on stderr); 2 the daemon could
// not be reached, or the command line / token setup is wrong.
import { DEFAULT_ADMIN_ADDR, parseAdminAddr } from '../admin-server.ts';
import { adminToken } from '../admin/admin-auth.ts';
import type { ApplyResponse, Problem } from '../admin/contract.ts';
import type { AppStatus } from '../app-supervisor.ts';

export interface CliIo {
  out(text: string): void;
  err(text: string): void;
}

export const EXIT_OK = 0;
export const EXIT_REFUSED = 1;
export const EXIT_UNREACHABLE = 2;

interface Client {
  readonly base: string;
  readonly token: string | undefined;
}

function client(admin: string | undefined, env: NodeJS.ProcessEnv): Client {
  const { host, port } = parseAdminAddr(admin ?? env.FPROXY_ADMIN_ADDR ?? DEFAULT_ADMIN_ADDR);
  // A daemon bound to every interface is reached on loopback.
  const h = host === '0.0.0.0' ? '127.0.0.1' : host === '::' ? '::1' : host;
  return { base: `http://${h.includes(':') ? `[${h}]` : h}:${port}`, token: adminToken(env) };
}

type Result = { ok: true; body: unknown } | { ok: false; code: number };

async function request(c: Client, io: CliIo, method: string, path: string, body?: unknown): Promise<Result> {
  let res: Response;
  try {
    res = await fetch(c.base + path, {
      method,
      headers: { ...(c.token === undefined ? {} : { authorization: `Bearer ${c.token}` }), ...(body === undefined ? {} : { 'content-type': 'application/json' }) },
      ...(body === undefined ? {} : { body: JSON.stringify(body) }),
      signal: AbortSignal.timeout(120_000),
    });
  } catch (err) {
    const cause = (err as { cause?: { code?: string; message?: string } }).cause;
    io.err(`fproxy: cannot reach the daemon's admin endpoint at ${c.base}: ${cause?.code ?? cause?.message ?? (err as Error).message} (is the daemon running? pass --admin host:port or set FPROXY_ADMIN_ADDR)\n`);
    return { ok: false, code: EXIT_UNREACHABLE };
  }
  const text = await res.text();
  let parsed: unknown = text;
  try {
    parsed = JSON.parse(text);
  } catch {
    // Not JSON (text/plain): shown as it is.
  }
  if (res.ok) return { ok: true, body: parsed };
  const problem = parsed as Partial<Problem>;
  if (typeof problem === 'object' && problem !== null && typeof problem.detail === 'string') {
    io.err(`fproxy: ${problem.detail} (${res.status} ${problem.code ?? ''})\n`.replace(' )', ')'));
    for (const i of problem.issues ?? []) io.err(`  ${i.path === '' ? '' : `${i.path}: `}${i.message}\n`);
  } else io.err(`fproxy: ${res.status} ${res.statusText}: ${text.trim()}\n`);
  return { ok: false, code: EXIT_REFUSED };
}

function generations(r: ApplyResponse): string {
  const gens = Object.entries(r.apps).map(([name, a]) => `${name} generation ${a.generation}`);
  return gens.length === 0 ? 'nothing to roll out' : `now serving: ${gens.join(', ')}`;
}

export interface CliOptions {
  readonly admin?: string;
  readonly env?: NodeJS.ProcessEnv;
  readonly io?: CliIo;
}

const stdio: CliIo = { out: (t) => void process.stdout.write(t), err: (t) => void process.stderr.write(t) };

/** Runs one admin command; resolves with the exit code. */
export async function runAdminCommand(command: AdminCommand, options: CliOptions = {}): Promise<number> {
  const io = options.io ?? stdio;
  let c: Client;
  try {
    c = client(options.admin, options.env ?? process.env);
  } catch (err) {
    io.err(`fproxy: ${(err as Error).message}\n`);
    return EXIT_UNREACHABLE;
  }
  const app = 'app' in command ? encodeURIComponent(command.app) : '';
  const target = 'target' in command ? encodeURIComponent(command.target) : '';
  let r: Result;
  switch (command.kind) {
    case 'apps':
      r = await request(c, io, 'GET', '/apps');
      if (r.ok) io.out(command.json ? JSON.stringify(r.body, null, 2) + '\n' : formatApps(r.body as AppStatus[]));
      break;
    case 'add': {
      const body = { Address: command.target, ...(command.weight === undefined ? {} : { Weight: command.weight }), ...(command.backup ? { Backup: true } : {}) };
      r = await request(c, io, 'POST', `/apps/${app}/targets`, body);
      if (r.ok) io.out(`added ${command.target} to ${command.app}; ${generations(r.body as ApplyResponse)}\n`);
      break;
    }
    case 'rm':
      r = await request(c, io, 'DELETE', `/apps/${app}/targets/${target}`);
      if (r.ok) io.out(`removed ${command.target} from ${command.app} (its open connections drain); ${generations(r.body as ApplyResponse)}\n`);
      break;
    case 'drain':
    case 'enable':
      r = await request(c, io, 'POST', `/apps/${app}/targets/${target}/${command.kind}`);
      if (r.ok) io.out(command.kind === 'drain' ? `drained ${command.target} of ${command.app}: no new connections, open ones continue (runtime only, not written to the config)\n` : `enabled ${command.target} of ${command.app}\n`);
      break;
    case 'reload': {
      r = await request(c, io, 'POST', '/reload');
      const body = r.ok ? (r.body as { hash: string | null; error: { message: string } | null }) : undefined;
      if (body?.error) {
        io.err(`fproxy: the config was rejected; apps keep running as they are:\n${body.error.message}\n`);
        return EXIT_REFUSED;
      }
      if (body) io.out(`reloaded; config ${body.hash?.slice(0, 12) ?? '(none applied)'}\n`);
      break;
    }
  }
  return r.ok ? EXIT_OK : r.code;
}

export type AdminCommand =
  | { kind: 'apps'; json?: boolean }
  | { kind: 'add'; app: string; target: string; weight?: number; backup?: boolean }
  | { kind: 'rm' | 'drain' | 'enable'; app: string; target: string }
  | { kind: 'reload' };

/** One line per app, then one per target with its health state. */
export function formatApps(apps: readonly AppStatus[]): string {
  if (apps.length === 0) return 'no apps\n';
  const lines: string[] = [];
  for (const a of apps) {
    lines.push(`${a.name}  generation ${a.generation}  ${a.state}  ports ${a.ports.join(',')}  ${a.activeConnections} connections${a.currentError ? `  error: ${a.currentError.message}` : ''}`);
    for (const h of a.health) lines.push(`  ${h.target}  ${h.state}  ${h.activeConnections} connections${h.lastError ? `  ${h.lastError}` : ''}`);
  }
  return lines.join('\n') + '\n';
}
