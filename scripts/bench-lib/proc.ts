// Child processes of the benchmark and what /proc says about them.
// Owns: spawning every helper (proxies, upstreams, load tools) in its own process group so that
// one kill(-pid) reaches a process and everything it forked (nginx workers, fproxy listeners);
// killing them all on exit, SIGINT, SIGTERM and errors; CPU ticks, RSS/PSS and process trees.
// Invariant: every process this script starts is in `live` until it has exited, and is only ever
// signalled through the pid (process group) we hold.
import { spawn } from 'node:child_process';
import type { ChildProcess, SpawnOptions } from 'node:child_process';
import { readFileSync, readdirSync, readlinkSync } from 'node:fs';

export const CLK_TCK = 100; // Linux USER_HZ; checked with `getconf CLK_TCK` in tools.ts

const live = new Set<ChildProcess>();

export interface Spawned {
  readonly child: ChildProcess;
  readonly pid: number;
  /** Resolves with the exit code (or the signal name) once the process has exited. */
  readonly exited: Promise<number | string>;
  /** SIGTERM the group, wait up to graceMs, then SIGKILL the group. */
  stop(graceMs?: number): Promise<void>;
}

export function start(cmd: string, args: readonly string[], opts: SpawnOptions = {}): Spawned {
  const child = spawn(cmd, args, { stdio: ['ignore', 'ignore', 'ignore'], ...opts, detached: true });
  if (child.pid === undefined) throw new Error(`Cannot start ${cmd}: no pid (is it installed?)`);
  const pid = child.pid;
  live.add(child);
  const exited = new Promise<number | string>((resolve) => {
    child.on('exit', (code, signal) => {
      live.delete(child);
      resolve(code ?? signal ?? 'unknown');
    });
    child.on('error', () => {
      live.delete(child);
      resolve('spawn-error');
    });
  });
  const stop = async (graceMs = 5000): Promise<void> => {
    signalGroup(pid, 'SIGTERM');
    await Promise.race([exited, sleep(graceMs)]);
    // Whatever is left of the group (children that outlived their parent) goes too.
    signalGroup(pid, 'SIGKILL');
    await Promise.race([exited, sleep(2000)]);
  };
  return { child, pid, exited, stop };
}

function signalGroup(pid: number, sig: NodeJS.Signals): void {
  try {
    process.kill(-pid, sig);
  } catch {
    // ESRCH: the group is already gone.
  }
}

/** Last resort, synchronous: used from the 'exit' handler. */
export function killAllNow(): void {
  for (const child of live) if (child.pid !== undefined) signalGroup(child.pid, 'SIGKILL');
}

export async function stopAll(): Promise<void> {
  await Promise.all(
    [...live].map(async (child) => {
      if (child.pid === undefined) return;
      signalGroup(child.pid, 'SIGTERM');
      await sleep(1500);
      signalGroup(child.pid, 'SIGKILL');
    }),
  );
}

/** Run to completion with a hard time limit; collects stdout and stderr. */
export async function run(
  cmd: string,
  args: readonly string[],
  timeoutMs: number,
  opts: SpawnOptions = {},
): Promise<{ code: number | string; stdout: string; stderr: string }> {
  const p = start(cmd, args, { ...opts, stdio: ['ignore', 'pipe', 'pipe'] });
  let stdout = '';
  let stderr = '';
  p.child.stdout?.setEncoding('utf8').on('data', (d: string) => (stdout += d));
  p.child.stderr?.setEncoding('utf8').on('data', (d: string) => (stderr += d));
  const timer = setTimeout(() => void p.stop(1000), timeoutMs);
  const code = await p.exited;
  clearTimeout(timer);
  return { code, stdout, stderr };
}

export function sleep(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms));
}

/** Poll `check` every intervalMs until it returns a value (not undefined) or the deadline passes. */
export async function waitFor<T>(
  what: string,
  timeoutMs: number,
  check: () => Promise<T | undefined> | T | undefined,
  intervalMs = 50,
): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  let lastError: unknown;
  for (;;) {
    try {
      const v = await check();
      if (v !== undefined) return v;
    } catch (err) {
      lastError = err;
    }
    if (Date.now() > deadline) {
      const why = lastError instanceof Error ? `: ${lastError.message}` : '';
      throw new Error(`Timed out after ${timeoutMs} ms waiting for ${what}${why}`);
    }
    await sleep(intervalMs);
  }
}

// ---- /proc ----

interface Stat {
  readonly ppid: number;
  readonly ticks: number; // utime + stime
}

function readStat(pid: number): Stat | undefined {
  let text: string;
  try {
    text = readFileSync(`/proc/${pid}/stat`, 'utf8');
  } catch {
    return undefined;
  }
  // The command name may contain spaces and parentheses: fields start after the last ')'.
  const f = text.slice(text.lastIndexOf(')') + 2).split(' ');
  // f[0] is field 3 (state): field n is f[n - 3]. ppid = 4, utime = 14, stime = 15.
  return { ppid: Number(f[1]), ticks: Number(f[11]) + Number(f[12]) };
}

/** Every live descendant of root (children, grandchildren …), not root itself. */
export function descendants(root: number): number[] {
  const byParent = new Map<number, number[]>();
  for (const name of readdirSync('/proc')) {
    if (!/^[0-9]+$/.test(name)) continue;
    const pid = Number(name);
    const st = readStat(pid);
    if (!st) continue;
    const list = byParent.get(st.ppid) ?? [];
    list.push(pid);
    byParent.set(st.ppid, list);
  }
  const out: number[] = [];
  const queue = [root];
  while (queue.length > 0) {
    const p = queue.shift() as number;
    for (const c of byParent.get(p) ?? []) {
      out.push(c);
      queue.push(c);
    }
  }
  return out;
}

/** utime + stime in seconds summed over pids (pids that have exited count 0). */
export function cpuSeconds(pids: readonly number[]): number {
  let ticks = 0;
  for (const pid of pids) ticks += readStat(pid)?.ticks ?? 0;
  return ticks / CLK_TCK;
}

export interface Mem {
  readonly rssKiB: number;
  readonly pssKiB: number;
}

export function memOf(pid: number): Mem {
  try {
    const text = readFileSync(`/proc/${pid}/smaps_rollup`, 'utf8');
    const rss = /^Rss:\s+(\d+) kB/m.exec(text);
    const pss = /^Pss:\s+(\d+) kB/m.exec(text);
    return { rssKiB: Number(rss?.[1] ?? 0), pssKiB: Number(pss?.[1] ?? 0) };
  } catch {
    return { rssKiB: 0, pssKiB: 0 };
  }
}

export function memSum(pids: readonly number[]): Mem {
  let rssKiB = 0;
  let pssKiB = 0;
  for (const pid of pids) {
    const m = memOf(pid);
    rssKiB += m.rssKiB;
    pssKiB += m.pssKiB;
  }
  return { rssKiB, pssKiB };
}

/** TCP ports pid is listening on (IPv4 and IPv6), from its socket fds and /proc/net/tcp{,6}. */
export function listeningPorts(pid: number): number[] {
  const inodes = new Set<string>();
  try {
    for (const fd of readdirSync(`/proc/${pid}/fd`)) {
      try {
        const m = /^socket:\[(\d+)\]$/.exec(readlinkSync(`/proc/${pid}/fd/${fd}`));
        if (m?.[1]) inodes.add(m[1]);
      } catch {
        // fd closed meanwhile
      }
    }
  } catch {
    return [];
  }
  return [...new Set(listeningSockets().filter((s) => inodes.has(s.inode)).map((s) => s.port))];
}

/** Every TCP socket in LISTEN state on this machine (IPv4 and IPv6), from /proc/net/tcp{,6}. */
export function listeningSockets(): { port: number; inode: string }[] {
  const out: { port: number; inode: string }[] = [];
  for (const file of ['/proc/net/tcp', '/proc/net/tcp6']) {
    let text = '';
    try {
      text = readFileSync(file, 'utf8');
    } catch {
      continue;
    }
    for (const line of text.split('\n').slice(1)) {
      const f = line.trim().split(/\s+/);
      // local_address rem_address st … inode(9)
      if (f[3] !== '0A' || !f[9]) continue;
      const port = parseInt(f[1]?.split(':')[1] ?? '', 16);
      if (Number.isFinite(port)) out.push({ port, inode: f[9] });
    }
  }
  return out;
}

let handlersInstalled = false;

/** Kill every child on exit and on SIGINT/SIGTERM; run `cleanup` (e.g. remove the temp dir) first. */
export function installCleanup(cleanup: () => void): void {
  if (handlersInstalled) return;
  handlersInstalled = true;
  process.on('exit', () => {
    killAllNow();
    try {
      cleanup();
    } catch {
      // best effort on the way out
    }
  });
  const onSignal = (sig: NodeJS.Signals) => {
    process.stderr.write(`\nbench: ${sig}, stopping every process it started …\n`);
    void stopAll().finally(() => process.exit(sig === 'SIGINT' ? 130 : 143));
  };
  process.once('SIGINT', onSignal);
  process.once('SIGTERM', onSignal);
}
