// Test support for the daemon: run the real daemon (daemon/main.ts) as a child process with a
// clean env and a temp config, read its NDJSON logs (its listeners inherit its stdout, so their
// lines arrive here too), query its admin endpoint, rewrite its config the ways editors do, and
// clean everything up — including listeners the daemon left behind, killed by pid only after
// checking the pid still names the same process (its start time), never by name.
// Used by *.test.ts only.
import { spawn } from 'node:child_process';
import type { ChildProcess } from 'node:child_process';
import { once } from 'node:events';
import { readdirSync, readFileSync } from 'node:fs';
import { mkdtemp, rename, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createInterface } from 'node:readline';
import type { TestContext } from 'node:test';
import { waitFor } from '../proxy/testing/wait-for.ts';
import type { AppStatus } from './app-supervisor.ts';
import type { DaemonStatus } from './daemon.ts';

export const DAEMON_MAIN = new URL('./main.ts', import.meta.url);

/** A parsed log line; waits key on `event` (stable), never on `msg` (wording). */
export type LogLine = Record<string, unknown> & { event?: string; msg?: string; proc?: string; pid?: number };

export type WriteMode = 'in-place' | 'atomic' | 'mv';

export interface TestDaemon {
  readonly child: ChildProcess;
  readonly pid: number;
  readonly adminPort: number;
  readonly dir: string;
  readonly configPath: string;
  readonly logs: LogLine[];
  stderr: string;
  readonly exited: Promise<{ code: number | null; signal: NodeJS.Signals | null }>;
  apps(): Promise<AppStatus[]>;
  app(name: string): Promise<AppStatus | undefined>;
  status(): Promise<DaemonStatus>;
  get(path: string): Promise<{ status: number; body: string }>;
  writeConfig(config: unknown, mode?: WriteMode): Promise<void>;
  /** The ports app `name` has bound, once it has (a configured 0 read back as the kernel's pick). */
  ports(name: string): Promise<number[]>;
  /** App `name` once running with all its workers up (and at `generation`, if given). */
  running(name: string, generation?: number): Promise<AppStatus>;
  waitLog(pred: (l: LogLine) => boolean, ms?: number, what?: string): Promise<LogLine>;
  /** Listener pids seen in logs or status (with their start times), for leak checks and cleanup. */
  readonly listenerPids: Map<number, string>;
}

export interface StartOptions {
  readonly env?: Record<string, string>;
  /** Resolve once the process is spawned, without waiting for the admin endpoint (start failures). */
  readonly noWait?: boolean;
}

export { waitFor };

/** A config with sane test defaults: one worker, short drains. Ports: 0 = the kernel picks (read it back with d.ports(name)). */
export function appConfig(name: string, ports: number[], targets: number[] | string[], extra: Record<string, unknown> = {}): Record<string, unknown> {
  return { Name: name, Ports: ports, Targets: targets.map((t) => (typeof t === 'number' ? `127.0.0.1:${t}` : t)), Workers: 1, DrainTimeoutMs: 2000, ...extra };
}

export async function startTestDaemon(t: TestContext, config: unknown, options: StartOptions = {}): Promise<TestDaemon> {
  const dir = await mkdtemp(join(tmpdir(), 'fproxy-daemon-'));
  const configPath = join(dir, 'config.json');
  await writeFile(configPath, typeof config === 'string' ? config : JSON.stringify(config, null, 2));
  const child = spawn(process.execPath, [DAEMON_MAIN.pathname], {
    stdio: ['ignore', 'pipe', 'pipe'],
    // FPROXY_MIGRATE_REQ=leave: a test must not change the host's sysctls (accept-queue.scenario.ts
    // sets it back to "set", inside the network namespace its test creates).
    env: { PATH: process.env.PATH ?? '/usr/bin:/bin', FPROXY_CONFIG_PATH: configPath, FPROXY_ADMIN_ADDR: '127.0.0.1:0', LOG_LEVEL: 'info', FPROXY_MIGRATE_REQ: 'leave', ...options.env },
  });
  const exited = once(child, 'exit').then(([code, signal]) => ({ code: code as number | null, signal: signal as NodeJS.Signals | null }));
  const logs: LogLine[] = [];
  const listenerPids = new Map<number, string>();
  const waiters = new Set<() => void>();
  const d = {
    child,
    pid: child.pid!,
    adminPort: 0,
    dir,
    configPath,
    logs,
    stderr: '',
    exited,
    listenerPids,
  } as TestDaemon & { adminPort: number };
  const note = (pid: number): void => {
    if (!listenerPids.has(pid)) {
      const start = processStartTime(pid);
      if (start !== undefined) listenerPids.set(pid, start);
    }
  };
  // Always drain both pipes: a full pipe would block the daemon and its listeners.
  createInterface({ input: child.stdout! }).on('line', (line) => {
    let parsed: LogLine;
    try {
      parsed = JSON.parse(line) as LogLine;
    } catch {
      parsed = { msg: line };
    }
    logs.push(parsed);
    if (parsed.proc === 'listener' && typeof parsed.pid === 'number') note(parsed.pid);
    for (const w of waiters) w();
  });
  child.stderr!.on('data', (chunk: Buffer) => (d.stderr += chunk.toString()));

  t.after(async () => {
    if (child.exitCode === null && child.signalCode === null) {
      child.kill('SIGKILL');
      await exited;
    }
    // The daemon's listeners exit by themselves once it is gone; give them a moment, then make sure.
    await waitFor(() => aliveListeners(listenerPids).length === 0, 10_000).catch(() => {});
    for (const pid of aliveListeners(listenerPids)) process.kill(pid, 'SIGKILL');
    // A process the daemon spawned that outlived it (an upgrade's successor daemon) may still hold
    // the other end of these pipes: close ours, or they keep this test process alive for good.
    child.stdout?.destroy();
    child.stderr?.destroy();
    await rm(dir, { recursive: true, force: true });
  });

  const waitLog = (pred: (l: LogLine) => boolean, ms = 20_000, what = 'log line'): Promise<LogLine> =>
    new Promise((resolve, reject) => {
      const check = (): boolean => {
        const hit = logs.find(pred);
        if (hit === undefined) return false;
        cleanup();
        resolve(hit);
        return true;
      };
      const onExit = (): void => {
        if (!check()) {
          cleanup();
          reject(new Error(`daemon exited while waiting for ${what}; stderr: ${d.stderr}`));
        }
      };
      const timer = setTimeout(() => {
        cleanup();
        reject(new Error(`timed out after ${ms} ms waiting for ${what}; stderr: ${d.stderr}`));
      }, ms);
      const cleanup = (): void => {
        clearTimeout(timer);
        waiters.delete(waiter);
        child.off('exit', onExit);
      };
      const waiter = (): void => void check();
      if (check()) return;
      waiters.add(waiter);
      child.once('exit', onExit);
    });

  const get = async (path: string): Promise<{ status: number; body: string }> => {
    const res = await fetch(`http://127.0.0.1:${d.adminPort}${path}`);
    return { status: res.status, body: await res.text() };
  };
  d.get = get;
  d.waitLog = waitLog;
  d.apps = async () => {
    const apps = JSON.parse((await get('/apps')).body) as AppStatus[];
    for (const a of apps) for (const pid of [...a.pids, ...a.drainingPids]) note(pid);
    return apps;
  };
  d.app = async (name) => (await d.apps()).find((a) => a.name === name && a.state !== 'draining');
  d.status = async () => JSON.parse((await get('/status')).body) as DaemonStatus;
  d.writeConfig = (next, mode = 'atomic') => writeConfig(configPath, next, mode);
  d.ports = (name) => waitFor(async () => {
    const a = await d.app(name);
    return a !== undefined && a.ports.length > 0 && a.ports.every((p) => p > 0) ? [...a.ports] : undefined;
  }, 20_000, `the ports of app ${name} in /apps`);
  d.running = (name, generation) => waitFor(async () => {
    const a = await d.app(name);
    return a?.state === 'running' && a.pids.length === a.workers && (generation === undefined || a.generation === generation) ? a : undefined;
  }, 30_000, `app ${name} running${generation === undefined ? '' : ` generation ${generation}`} with every worker`);

  if (!options.noWait) {
    const line = await waitLog((l) => l.event === 'admin-listening', 20_000, 'the admin endpoint');
    d.adminPort = Number(String(line.address).split(':').pop());
  }
  return d;
}

/** Rewrite the config the way a user or editor would. */
export async function writeConfig(configPath: string, config: unknown, mode: WriteMode): Promise<void> {
  const text = typeof config === 'string' ? config : JSON.stringify(config, null, 2);
  if (mode === 'in-place') return writeFile(configPath, text);
  const tmp = mode === 'atomic' ? `${configPath}.tmp-${process.pid}-${Math.random().toString(36).slice(2)}` : join(await mkdtemp(join(tmpdir(), 'fproxy-mv-')), 'new.json');
  await writeFile(tmp, text);
  await rename(tmp, configPath);
  if (mode === 'mv') await rm(join(tmp, '..'), { recursive: true, force: true });
}

/** /proc/<pid>/stat field 22: identifies a process across pid reuse. */
export function processStartTime(pid: number): string | undefined {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    return stat.slice(stat.lastIndexOf(')') + 2).split(' ')[19];
  } catch {
    return undefined;
  }
}

/** Live child processes of `parent` (from /proc), with their start times: listeners and spares. */
export function childrenOf(parent: number): Map<number, string> {
  const found = new Map<number, string>();
  for (const entry of readdirSync('/proc')) {
    if (!/^\d+$/.test(entry)) continue;
    try {
      const stat = readFileSync(`/proc/${entry}/stat`, 'utf8');
      const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
      if (Number(fields[1]) === parent) found.set(Number(entry), fields[19]!);
    } catch {
      // Gone between readdir and read.
    }
  }
  return found;
}

/** Pids from `seen` still alive as the same process (and not a zombie). */
export function aliveListeners(seen: ReadonlyMap<number, string>): number[] {
  return [...seen].filter(([pid, start]) => processStartTime(pid) === start && !isZombie(pid)).map(([pid]) => pid);
}

function isZombie(pid: number): boolean {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    return stat.slice(stat.lastIndexOf(')') + 2).startsWith('Z');
  } catch {
    return false;
  }
}
