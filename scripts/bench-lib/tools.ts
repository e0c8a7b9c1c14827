// External tools of the benchmark (haproxy, nginx + stream module, wrk, iperf3): installs the
// missing ones from Debian, reports versions and the machine; free loopback ports.
import { execFileSync, spawnSync } from 'node:child_process';
import { existsSync, readFileSync, unlinkSync, writeFileSync, chmodSync } from 'node:fs';
import os from 'node:os';
import { listeningSockets } from './proc.ts';

export const NGINX_STREAM_MODULE = '/usr/lib/nginx/modules/ngx_stream_module.so';

interface Need {
  readonly check: () => boolean;
  readonly pkg: string;
}

const NEEDS: Readonly<Record<string, Need>> = {
  haproxy: { check: () => hasCommand('haproxy'), pkg: 'haproxy' },
  nginx: { check: () => hasCommand('nginx'), pkg: 'nginx' },
  'nginx-stream': { check: () => existsSync(NGINX_STREAM_MODULE), pkg: 'libnginx-mod-stream' },
  wrk: { check: () => hasCommand('wrk'), pkg: 'wrk' },
  iperf3: { check: () => hasCommand('iperf3'), pkg: 'iperf3' },
};

function hasCommand(name: string): boolean {
  for (const dir of (process.env.PATH ?? '').split(':').concat(['/usr/sbin', '/usr/bin', '/sbin'])) {
    if (dir && existsSync(`${dir}/${name}`)) return true;
  }
  return false;
}

/** Install whatever of `names` is missing (apt-get update once, then install). Throws if it can't. */
export function ensureTools(names: readonly string[], log: (s: string) => void): void {
  const missing = [...new Set(names)].filter((n) => {
    const need = NEEDS[n];
    if (!need) throw new Error(`Unknown tool "${n}"`);
    return !need.check();
  });
  if (missing.length === 0) return;
  const pkgs = missing.map((n) => (NEEDS[n] as Need).pkg);
  if (process.getuid?.() !== 0) {
    throw new Error(`Missing ${missing.join(', ')}; install as root: apt-get install -y ${pkgs.join(' ')}`);
  }
  log(`installing ${pkgs.join(' ')} from Debian (apt-get update, then install) …`);
  // Keep the packages' maintainer scripts from starting system-wide nginx/haproxy services:
  // this benchmark runs its own instances in a temp dir.
  const policy = '/usr/sbin/policy-rc.d';
  const ownPolicy = !existsSync(policy);
  if (ownPolicy) {
    writeFileSync(policy, '#!/bin/sh\nexit 101\n');
    chmodSync(policy, 0o755);
  }
  try {
    const env = { ...process.env, DEBIAN_FRONTEND: 'noninteractive' };
    const opts = { env, stdio: ['ignore', 'ignore', 'inherit'] as ('ignore' | 'inherit')[], timeout: 600_000 };
    execFileSync('apt-get', ['update', '-qq'], opts);
    execFileSync('apt-get', ['install', '-y', '-qq', '--no-install-recommends', ...pkgs], opts);
  } finally {
    if (ownPolicy) unlinkSync(policy);
  }
  const still = missing.filter((n) => !(NEEDS[n] as Need).check());
  if (still.length > 0) throw new Error(`Still missing after apt-get install: ${still.join(', ')}`);
}

/** First non-empty line a version flag prints, on stdout or stderr (nginx -v uses stderr, wrk -v exits 1). */
function firstLine(cmd: string, args: string[]): string {
  const r = spawnSync(cmd, args, { encoding: 'utf8', stdio: ['ignore', 'pipe', 'pipe'], timeout: 5000 });
  const text = `${r.stdout ?? ''}\n${r.stderr ?? ''}`;
  return text.split('\n').map((l) => l.trim()).find((l) => l.length > 0) ?? 'unknown';
}

export interface Machine {
  readonly cores: number;
  readonly cpuModel: string;
  readonly memGiB: number;
  readonly kernel: string;
  readonly node: string;
  readonly haproxy: string;
  readonly nginx: string;
  readonly wrk: string;
  readonly iperf3: string;
  readonly clkTck: string;
  readonly nofile: string;
}

export function machine(): Machine {
  const limits = readFileSync('/proc/self/limits', 'utf8');
  const nofile = /^Max open files\s+(\S+)\s+(\S+)/m.exec(limits);
  return {
    cores: os.availableParallelism(),
    cpuModel: os.cpus()[0]?.model ?? 'unknown',
    memGiB: Math.round(os.totalmem() / 2 ** 30),
    kernel: os.release(),
    node: process.version,
    haproxy: firstLine('haproxy', ['-v']).replace(/ - https?:.*$/, ''),
    nginx: firstLine('nginx', ['-v']).replace(/^nginx version: /, ''),
    wrk: firstLine('wrk', ['-v']).replace(/ Copyright.*$/, ''),
    iperf3: firstLine('iperf3', ['--version']),
    clkTck: firstLine('getconf', ['CLK_TCK']),
    nofile: nofile ? `${nofile[1]}/${nofile[2]}` : 'unknown',
  };
}

/** Soft open-files limit of this process. */
export function nofileLimit(): number {
  const m = /^Max open files\s+(\S+)/m.exec(readFileSync('/proc/self/limits', 'utf8'));
  return m?.[1] === 'unlimited' ? Infinity : Number(m?.[1] ?? 1024);
}

/**
 * A TCP port nothing listens on right now (per /proc/net/tcp and tcp6), below the kernel's
 * ephemeral range when there is room (a port from that range is soon taken as the local port of
 * some outgoing connection: wrk opens thousands per second). For third-party servers (HAProxy,
 * nginx, iperf3) that need a number in their config; nothing is bound and released here, and a
 * server that still loses the port fails its start saying so (iperf3's is retried). fproxy itself
 * is given port 0 and its real port read back from /apps.
 */
export function unusedPort(): number {
  let lo = 32768;
  try {
    lo = Number(readFileSync('/proc/sys/net/ipv4/ip_local_port_range', 'utf8').trim().split(/\s+/)[0]) || lo;
  } catch {
    // not Linux: keep the default
  }
  const from = 12_000;
  const taken = new Set(listeningSockets().map((l) => l.port));
  for (let tries = 0; tries < 1000; tries++) {
    const port = from + Math.floor(Math.random() * Math.max(1, lo - from));
    if (!taken.has(port)) return port;
  }
  throw new Error(`Cannot find a port nobody listens on between ${from} and ${lo}`);
}
