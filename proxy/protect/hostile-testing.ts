// Test support for hostile-client tests: a listener in a child process (optionally under prlimit),
// its NDJSON log lines, and its RSS and CPU from /proc. Used by *.test.ts only.
import { spawn, type ChildProcess } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { createInterface } from 'node:readline';
import type { ListenerSpec } from '../spec.ts';

const FIXTURE = new URL('./fixtures/listen-port0.ts', import.meta.url).pathname;

export interface ChildListener {
  readonly child: ChildProcess;
  readonly pid: number;
  readonly port: number;
  readonly lines: Record<string, unknown>[];
  /** Resident set size in KiB (VmRSS). */
  rssKiB(): number;
  /** user + system CPU ticks. */
  cpuTicks(): number;
  alive(): boolean;
}

export async function spawnListener(t: { after: (fn: () => unknown) => void }, spec: ListenerSpec, nofile?: number): Promise<ChildListener> {
  const node = process.execPath;
  const args = [FIXTURE, JSON.stringify(spec)];
  const child = nofile === undefined ? spawn(node, args, { stdio: ['ignore', 'pipe', 'inherit'] }) : spawn('prlimit', [`--nofile=${nofile}:${nofile}`, node, ...args], { stdio: ['ignore', 'pipe', 'inherit'] });
  t.after(() => {
    if (child.exitCode === null && child.signalCode === null) child.kill('SIGKILL');
  });
  const lines: Record<string, unknown>[] = [];
  const port = await new Promise<number>((resolve, reject) => {
    child.once('exit', (code) => reject(new Error(`listener exited with ${code} before ready`)));
    createInterface({ input: child.stdout! }).on('line', (line) => {
      const j = JSON.parse(line) as Record<string, unknown>;
      lines.push(j);
      if (j.msg === 'ready') resolve(j.port as number);
    });
  });
  const pid = child.pid!;
  return {
    child, pid, port, lines,
    rssKiB: () => Number(/VmRSS:\s+(\d+)/.exec(readFileSync(`/proc/${pid}/status`, 'utf8'))![1]),
    cpuTicks: () => {
      const f = readFileSync(`/proc/${pid}/stat`, 'utf8').split(') ')[1]!.split(' ');
      return Number(f[11]) + Number(f[12]);
    },
    alive: () => child.exitCode === null && child.signalCode === null,
  };
}
