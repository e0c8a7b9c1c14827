// fproxy started the way users start it: the daemon with a config file
// (`FPROXY_CONFIG_PATH=<config> node daemon/main.ts`, admin on 127.0.0.1:0), default settings.
// Owns: writing the config (atomically), starting/stopping the daemon, finding its admin address
// (its pino log on stdout, else the port its process listens on) and reading GET /apps.
import { closeSync, existsSync, openSync, readFileSync, renameSync, writeFileSync } from 'node:fs';
import { get } from 'node:http';
import { join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { descendants, listeningPorts, start, waitFor } from './proc.ts';
import type { Spawned } from './proc.ts';

export const REPO = resolve(fileURLToPath(new URL('../..', import.meta.url)));
export const PROJECT_NODE = join(REPO, 'node_modules/.bin/node');
export const DAEMON_MAIN = join(REPO, 'daemon/main.ts');

export interface AppConfig {
  readonly Name: string;
  readonly Ports: readonly number[];
  readonly Targets: readonly string[];
  readonly Workers?: number;
}

export function daemonAvailable(): boolean {
  return existsSync(DAEMON_MAIN) && existsSync(PROJECT_NODE);
}

/** Write then rename, so the daemon's watcher never sees a partial file. */
export function writeConfigAtomically(path: string, apps: readonly AppConfig[]): void {
  const tmp = `${path}.${process.pid}.tmp`;
  writeFileSync(tmp, JSON.stringify({ Apps: apps }, null, 2) + '\n');
  renameSync(tmp, path);
}

export interface Daemon {
  readonly proc: Spawned;
  readonly pid: number;
  readonly logPath: string;
  /** The daemon and every listener (its descendants). */
  pids(): number[];
  /** The listener processes only. */
  listenerPids(): number[];
  /** "127.0.0.1:PORT" of the admin endpoint (waits for it). */
  admin(timeoutMs?: number): Promise<string>;
  stop(): Promise<void>;
}

export function startDaemon(dir: string, configPath: string, name = 'fproxy', extraEnv: NodeJS.ProcessEnv = {}): Daemon {
  const logPath = join(dir, `${name}.log`);
  const fd = openSync(logPath, 'a');
  const env: NodeJS.ProcessEnv = { ...process.env, ...extraEnv, FPROXY_CONFIG_PATH: configPath, FPROXY_ADMIN_ADDR: '127.0.0.1:0' };
  delete env.NODE_TEST_CONTEXT; // when run from the smoke test, don't look like a test child
  let proc: Spawned;
  try {
    proc = start(PROJECT_NODE, ['daemon/main.ts'], { cwd: REPO, env, stdio: ['ignore', fd, fd] });
  } finally {
    closeSync(fd);
  }
  const pid = proc.pid;
  let adminAddr: string | undefined;
  return {
    proc,
    pid,
    logPath,
    pids: () => [pid, ...descendants(pid)],
    listenerPids: () => descendants(pid),
    admin: async (timeoutMs = 30_000) => {
      adminAddr ??= await waitFor('the fproxy admin address', timeoutMs, () => {
        if (proc.child.exitCode !== null) throw new Error(`fproxy daemon exited with ${proc.child.exitCode}; log: ${logPath}`);
        return adminFromLog(logPath) ?? adminFromProc(pid);
      });
      return adminAddr;
    },
    stop: () => proc.stop(10_000),
  };
}

/** The admin address from the daemon's structured `admin-listening` line (its `address` field). */
function adminFromLog(logPath: string): string | undefined {
  let text = '';
  try {
    text = readFileSync(logPath, 'utf8');
  } catch {
    return undefined;
  }
  for (const line of text.split('\n')) {
    if (!line.includes('admin-listening')) continue;
    try {
      const rec = JSON.parse(line) as { event?: unknown; address?: unknown };
      if (rec.event === 'admin-listening' && typeof rec.address === 'string') return rec.address;
    } catch {
      // not a JSON line
    }
  }
  return undefined;
}

/** The daemon process itself listens only on the admin port (listeners bind the app ports). */
function adminFromProc(pid: number): string | undefined {
  const ports = listeningPorts(pid);
  return ports.length === 1 ? `127.0.0.1:${ports[0]}` : undefined;
}

export interface AppStatus {
  readonly name: string;
  readonly generation: number;
  readonly state: string;
  readonly pids: readonly number[];
  readonly ports: readonly number[];
  readonly targets: readonly string[];
  readonly activeConnections?: number;
  readonly lastError?: unknown;
}

export function getApps(admin: string, timeoutMs = 5000): Promise<AppStatus[]> {
  return new Promise((resolve, reject) => {
    const req = get({ host: admin.split(':')[0], port: Number(admin.split(':')[1]), path: '/apps', agent: false, timeout: timeoutMs }, (res) => {
      let body = '';
      res.setEncoding('utf8');
      res.on('data', (d: string) => (body += d));
      res.on('end', () => {
        if (res.statusCode !== 200) return reject(new Error(`GET /apps → ${res.statusCode}: ${body.slice(0, 200)}`));
        try {
          const parsed = JSON.parse(body) as unknown;
          // Accept a bare array or {apps: [...]}.
          const list = Array.isArray(parsed) ? parsed : (parsed as { apps?: unknown }).apps;
          if (!Array.isArray(list)) return reject(new Error(`GET /apps: not a list: ${body.slice(0, 200)}`));
          resolve(list as AppStatus[]);
        } catch (err) {
          reject(err as Error);
        }
      });
    });
    req.on('timeout', () => req.destroy(new Error('GET /apps timed out')));
    req.on('error', reject);
  });
}
