// `fproxy upgrade [--admin ADDR] [--timeout-ms N]`: replace the running daemon with one started
// from the code on disk, without dropping a connection (daemon.ts upgrade()). It finds the daemon
// as `fproxy status` does (--admin, else FPROXY_ADMIN_ADDR, else 127.0.0.1:9900), reads its pid
// from GET /status, sends it SIGUSR2, and follows GET /status until
//   - a daemon with another pid answers, saying it took over from that pid → exit 0;
//   - the old daemon reports the upgrade failed (it keeps serving) → the reason, exit 1;
//   - nothing conclusive within --timeout-ms → exit 1.
// Why a signal and not an admin POST: the signal is the one path shared with `kill -USR2` and
// systemd, it needs no write route or credentials on the admin endpoint, and the result is still
// read back from /status. The cost: the command must run on the daemon's host, as its user or root.
import { DEFAULT_ADMIN_ADDR, parseAdminAddr } from './admin-server.ts';
import type { DaemonStatus } from './daemon.ts';

export interface UpgradeOptions {
  readonly admin?: string;
  readonly timeoutMs?: number;
}

export interface UpgradeOutput {
  log: (s: string) => void;
  error: (s: string) => void;
}

const CONSOLE: UpgradeOutput = { log: (s) => console.log(s), error: (s) => console.error(s) };

export async function runUpgrade(options: UpgradeOptions, out: UpgradeOutput = CONSOLE, env: NodeJS.ProcessEnv = process.env): Promise<number> {
  const raw = options.admin ?? env.FPROXY_ADMIN_ADDR ?? DEFAULT_ADMIN_ADDR;
  let url: string;
  try {
    const a = parseAdminAddr(raw);
    const host = a.host === '0.0.0.0' ? '127.0.0.1' : a.host === '::' ? '::1' : a.host;
    url = `http://${host.includes(':') ? `[${host}]` : host}:${a.port}/status`;
  } catch (err) {
    out.error((err as Error).message.replace('FPROXY_ADMIN_ADDR', '--admin / FPROXY_ADMIN_ADDR'));
    return 2;
  }
  const get = async (): Promise<DaemonStatus> => {
    const res = await fetch(url, { signal: AbortSignal.timeout(5000) });
    if (!res.ok) throw new Error(`HTTP ${res.status} from ${url}`);
    return (await res.json()) as DaemonStatus;
  };
  let before: DaemonStatus;
  try {
    before = await get();
  } catch (err) {
    const cause = (err as { cause?: { code?: string } }).cause?.code ?? (err as Error).name;
    const why = cause === 'ECONNREFUSED' ? 'nothing listens there' : cause === 'TimeoutError' ? 'no answer within 5 s' : (err as Error).message;
    out.error(`fproxy daemon is not running at ${raw} (${why}). Point --admin (or FPROXY_ADMIN_ADDR) at its admin address.`);
    return 1;
  }
  const old = before.pid;
  const sentAt = new Date().toISOString();
  try {
    process.kill(old, 'SIGUSR2');
  } catch (err) {
    const code = (err as { code?: string }).code;
    const why = code === 'EPERM' ? 'not permitted: run as the daemon\'s user or root (under systemd: `systemctl kill --kill-whom=main --signal=SIGUSR2 fproxy`)' : code === 'ESRCH' ? 'no such process here: run this on the daemon\'s host' : (err as Error).message;
    out.error(`Cannot signal the daemon (pid ${old}) to upgrade: ${why}`);
    return 1;
  }
  out.log(`upgrading the daemon (pid ${old}): a new one starts from the code on disk and takes over when every app serves`);
  const deadline = Date.now() + (options.timeoutMs ?? 120_000);
  let last = 'no answer yet';
  while (Date.now() < deadline) {
    await new Promise((r) => setTimeout(r, 200));
    let s: DaemonStatus;
    try {
      s = await get();
    } catch (err) {
      last = (err as Error).message;
      continue;
    }
    const u = s.upgrade;
    if (s.pid !== old && u?.state === 'took-over' && u.from === old) {
      out.log(`upgraded: daemon pid ${old} → ${s.pid}; apps: ${s.apps.filter((a) => a.state !== 'draining').map((a) => `${a.name} (${a.state})`).join(', ') || '(none)'}`);
      return 0;
    }
    if (s.pid === old && u?.state === 'failed' && (u.at ?? '') >= sentAt) {
      out.error(`upgrade failed; the daemon (pid ${old}) keeps serving: ${u.error?.message ?? 'no reason given'}${u.error?.code ? ` (${u.error.code})` : ''}`);
      return 1;
    }
    last = `pid ${s.pid}, upgrade ${u?.state ?? 'unknown'}`;
  }
  out.error(`upgrade did not finish within ${Math.round((options.timeoutMs ?? 120_000) / 1000)} s (last seen: ${last}); see the daemon's log`);
  return 1;
}
