// Cluster: a 3-member etcd cluster and 3 fproxy daemons (FPROXY_CONFIG_PATH=etcd://…), each in its
// own network namespace of a NetnsLab, plus the agent in the hub (targets, probes, etcd writes).
// Every process is started by pid and stopped by that pid; dispose() also sweeps the namespaces.
// Fixed ports are fine here: each namespace is new and private to this run.
import { randomBytes } from 'node:crypto';
import { spawn } from 'node:child_process';
import type { ChildProcess } from 'node:child_process';
import { openSync, closeSync, readFileSync } from 'node:fs';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { waitFor } from '../../proxy/testing/wait-for.ts';
import type { DaemonStatus } from '../../daemon/daemon.ts';
import { CONTROL_HUB, DATA_HUB, NetnsLab } from './netns-lab.ts';

const NODE = process.execPath;
const DAEMON_MAIN = fileURLToPath(new URL('../../daemon/main.ts', import.meta.url));
const AGENT = fileURLToPath(new URL('./agent.ts', import.meta.url));
export const APP_PORT = 8000;
const ADMIN_PORT = 9900;
/** A token for the daemons' non-loopback admin endpoints (one per run). */
const ADMIN_TOKEN = `cluster-${randomBytes(12).toString('hex')}`;
export const KEY = '/fproxy/config';
/** Target names and their ports on the hub's data address. */
export const TARGETS = ['A', 'B', 'C', 'D', 'E', 'F'].map((name, i) => ({ name, host: DATA_HUB, port: 7001 + i }));

export interface Cleanup {
  after(fn: () => unknown): void;
}

/** The config every node serves: one app whose only target is `name`. */
export function configFor(name: string): string {
  const target = TARGETS.find((t) => t.name === name)!;
  return JSON.stringify({ Apps: [{ Name: 'web', Ports: [APP_PORT], Targets: [`${target.host}:${target.port}`], Workers: 1, DrainTimeoutMs: 1000 }] }, null, 2);
}

type Reply = { id: number; ok: boolean; value?: unknown; code?: string; message?: string };

export class Cluster {
  readonly lab = new NetnsLab();
  readonly #members: (ChildProcess | undefined)[] = [];
  readonly #daemons: (ChildProcess | undefined)[] = [];
  #agent: ChildProcess | undefined;
  #dir = '';
  #nextId = 0;
  readonly #pending = new Map<number, (r: Reply) => void>();

  get etcdUrl(): string {
    return `etcd://${this.lab.etcd.map((n) => `${n.control}:2379`).join(',')}${KEY}`;
  }

  /** Build the lab, start the agent (targets), etcd, put `initial`, start the daemons and wait until each serves it. */
  async start(cleanup: Cleanup, initial: string): Promise<void> {
    cleanup.after(() => this.dispose());
    this.#dir = await mkdtemp(join(tmpdir(), 'fproxy-cluster-'));
    this.lab.build(3, 3);
    await this.#startAgent();
    await this.call('targets', { targets: TARGETS });
    await this.call('source', { url: this.etcdUrl, stateDir: join(this.#dir, 'agent-state') });
    for (let i = 0; i < 3; i++) this.startMember(i, 'new');
    await this.waitMembersHealthy([0, 1, 2]);
    await waitFor(() => this.call('write', { config: initial }).then(() => true, () => false), 20_000, 'first write to etcd');
    for (let i = 0; i < 3; i++) this.startDaemon(i);
    await Promise.all([0, 1, 2].map((i) => this.waitServing(i, 'A', 60_000)));
  }

  /** Send one request to the agent in the hub; rejects with its {code, message}. */
  call<T = unknown>(op: string, args: Record<string, unknown> = {}): Promise<T> {
    const id = ++this.#nextId;
    return new Promise((resolve, reject) => {
      this.#pending.set(id, (r) => (r.ok ? resolve(r.value as T) : reject(Object.assign(new Error(r.message), { code: r.code }))));
      this.#agent!.send({ id, op, ...args });
    });
  }

  startMember(i: number, state: 'new' | 'existing' = 'existing'): void {
    const node = this.lab.etcd[i]!;
    const cluster = this.lab.etcd.map((n, j) => `e${j + 1}=http://${n.control}:2380`).join(',');
    const log = openSync(join(this.#dir, `etcd-e${i + 1}.log`), 'a');
    this.#members[i] = spawn('ip', ['netns', 'exec', node.ns, 'etcd',
      '--name', `e${i + 1}`, '--data-dir', join(this.#dir, `e${i + 1}`),
      '--listen-client-urls', `http://${node.control}:2379`, '--advertise-client-urls', `http://${node.control}:2379`,
      '--listen-peer-urls', `http://${node.control}:2380`, '--initial-advertise-peer-urls', `http://${node.control}:2380`,
      '--initial-cluster', cluster, '--initial-cluster-state', state, '--initial-cluster-token', this.lab.prefix,
      // Lets the daemons ping every second (FPROXY_ETCD_KEEPALIVE_MS below) to notice a cut link fast.
      '--grpc-keepalive-min-time', '500ms', '--heartbeat-interval', '100', '--election-timeout', '1000',
      '--logger', 'zap', '--log-level', 'warn',
    ], { stdio: ['ignore', log, log] });
    closeSync(log);
  }

  async stopMember(i: number): Promise<void> {
    await stop(this.#members[i]);
    this.#members[i] = undefined;
  }

  async waitMembersHealthy(members: number[], ms = 30_000): Promise<void> {
    await waitFor(async () => {
      for (const i of members) {
        const r = await this.call<{ status: number; body: string }>('http', { url: `http://${this.lab.etcd[i]!.control}:2379/health` }).catch(() => undefined);
        if (r?.status !== 200 || !r.body.includes('"health":"true"')) return false;
      }
      return true;
    }, ms, `etcd members ${members.map((i) => `e${i + 1}`).join(',')} healthy`);
  }

  startDaemon(i: number): void {
    const node = this.lab.daemons[i]!;
    const log = openSync(this.daemonLog(i), 'a');
    this.#daemons[i] = spawn('ip', ['netns', 'exec', node.ns, NODE, DAEMON_MAIN], {
      stdio: ['ignore', log, log],
      env: {
        PATH: process.env.PATH ?? '/usr/bin:/bin',
        FPROXY_CONFIG_PATH: this.etcdUrl,
        FPROXY_STATE_DIR: join(this.#dir, `d${i + 1}-state`),
        FPROXY_ADMIN_ADDR: `${node.data}:${ADMIN_PORT}`,
        // The admin endpoint is on the namespace's data address, not loopback: the daemon then
        // requires a token (writes need it; reads, which this harness uses, stay open).
        FPROXY_ADMIN_TOKEN: ADMIN_TOKEN,
        FPROXY_ETCD_KEEPALIVE_MS: '1000',
        FPROXY_ETCD_RETRY_MAX_MS: '500',
        FPROXY_SPARE_LISTENERS: '1',
        LOG_LEVEL: 'info',
      },
    });
    closeSync(log);
  }

  async stopDaemon(i: number): Promise<void> {
    await stop(this.#daemons[i], 10_000);
    this.#daemons[i] = undefined;
  }

  daemonLog(i: number): string {
    return join(this.#dir, `d${i + 1}.log`);
  }

  /** The last lines of a daemon's log (for failure messages). */
  logTail(i: number, lines = 20): string {
    try {
      return readFileSync(this.daemonLog(i), 'utf8').trim().split('\n').slice(-lines).join('\n');
    } catch {
      return '';
    }
  }

  async status(i: number): Promise<DaemonStatus> {
    const r = await this.call<{ status: number; body: string }>('http', { url: `http://${this.lab.daemons[i]!.data}:${ADMIN_PORT}/status` });
    return JSON.parse(r.body) as DaemonStatus;
  }

  /** What daemon i's app answers right now (a target name), or the error. */
  probe(i: number): Promise<string> {
    return this.call<string>('probe', { host: this.lab.daemons[i]!.data, port: APP_PORT });
  }

  /** Resolves with ms from `since` (epoch ms) until daemon i's app answers `name`. */
  until(i: number, name: string, since: number, deadlineMs: number): Promise<number> {
    return this.call<number>('until', { host: this.lab.daemons[i]!.data, port: APP_PORT, expect: name, since, deadlineMs });
  }

  async waitServing(i: number, name: string, ms: number): Promise<void> {
    try {
      await this.until(i, name, Date.now(), ms);
    } catch (err) {
      throw new Error(`${(err as Error).message}\nd${i + 1} log:\n${this.logTail(i)}`, { cause: err });
    }
  }

  appAddrs(): { host: string; port: number }[] {
    return this.lab.daemons.map((n) => ({ host: n.data!, port: APP_PORT }));
  }

  async dispose(): Promise<void> {
    await Promise.all(this.#daemons.map((d) => stop(d, 10_000)));
    if (this.#agent) {
      await this.call('close').catch(() => {});
      await stop(this.#agent);
    }
    await Promise.all(this.#members.map((m) => stop(m)));
    this.lab.dispose();
    if (this.#dir) await rm(this.#dir, { recursive: true, force: true });
  }

  async #startAgent(): Promise<void> {
    // `ip netns exec` execs the command, so the IPC channel (an inherited fd) reaches the agent.
    const agent = spawn('ip', ['netns', 'exec', this.lab.hub, NODE, AGENT], { stdio: ['ignore', 'inherit', 'inherit', 'ipc'], env: { PATH: process.env.PATH ?? '/usr/bin:/bin' } });
    this.#agent = agent;
    await new Promise<void>((resolve, reject) => {
      agent.once('exit', (code) => reject(new Error(`agent exited (${code}) before it was ready`)));
      agent.on('message', (m: Reply & { ready?: boolean }) => {
        if (m.ready) return resolve();
        this.#pending.get(m.id)?.(m);
        this.#pending.delete(m.id);
      });
    });
  }
}

/** SIGTERM, then SIGKILL after `graceMs`; resolves once the process has exited. */
async function stop(child: ChildProcess | undefined, graceMs = 5000): Promise<void> {
  if (child === undefined || child.exitCode !== null || child.signalCode !== null) return;
  const exited = new Promise<void>((r) => child.once('exit', () => r()));
  child.kill('SIGTERM');
  const timer = setTimeout(() => child.kill('SIGKILL'), graceMs);
  await exited;
  clearTimeout(timer);
}

export { CONTROL_HUB };
