// The contenders: direct (no proxy), HAProxy (mode tcp, nbthread = cores), nginx stream
// (worker_processes = cores) and fproxy (the daemon with a one-app config, default settings).
// Each instance forwards one fresh front port to one upstream port on 127.0.0.1, so every
// measurement starts from a fresh process and measures proxying exactly one port.
// pids() are all the proxy's processes (summed for CPU and RSS); listenerPids() the ones that
// serve connections (HAProxy: its one process; nginx: the workers; fproxy: the app's listeners;
// fproxy's pids() also has its spare listeners, forked ahead of need by default).
import { closeSync, mkdirSync, openSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { descendants, start, waitFor } from './proc.ts';
import type { Spawned } from './proc.ts';
import { NGINX_STREAM_MODULE, unusedPort } from './tools.ts';
import { getApps, startDaemon, writeConfigAtomically } from './fproxy.ts';

export const CONTENDERS = ['direct', 'haproxy', 'nginx', 'fproxy', 'fproxy-js', 'fproxy-1w'] as const;
export type ContenderName = (typeof CONTENDERS)[number];
/**
 * Run when --only is not given. On request: fproxy-js (FPROXY_ENGINE=js: the native engine off) and
 * fproxy-1w (Workers 1 with one engine loop thread per core: one process using every core).
 */
export const DEFAULT_CONTENDERS: readonly ContenderName[] = ['direct', 'haproxy', 'nginx', 'fproxy'];

export interface Instance {
  /** Where the load goes. */
  readonly port: number;
  /** Has the proxy died? (undefined = alive) */
  exited(): string | undefined;
  pids(): number[];
  /** The processes serving the port (fproxy: the app's listeners from GET /apps, not its spares). */
  listenerPids(): Promise<number[]>;
  stop(): Promise<void>;
  /** The proxy's own word that it is ready (fproxy: GET /apps says running); absent = no such thing. */
  ready?(): Promise<boolean>;
  /** Files worth reading when it misbehaves. */
  readonly logs: readonly string[];
}

export interface StartOptions {
  readonly dir: string; // a fresh temp dir for this instance
  readonly upstreamPort: number;
  readonly cores: number;
}

export async function startContender(name: ContenderName, o: StartOptions): Promise<Instance> {
  mkdirSync(o.dir, { recursive: true });
  switch (name) {
    case 'direct':
      return { port: o.upstreamPort, exited: () => undefined, pids: () => [], listenerPids: async () => [], stop: async () => {}, logs: [] };
    case 'haproxy':
      return startHaproxy(o);
    case 'nginx':
      return startNginxStream(o);
    case 'fproxy':
      return startFproxy(o);
    case 'fproxy-js':
      return startFproxy(o, { FPROXY_ENGINE: 'js' });
    case 'fproxy-1w':
      return startFproxy(o, { FPROXY_ENGINE_THREADS: String(o.cores) }, 1);
  }
}

function exitedOf(p: Spawned): () => string | undefined {
  return () => (p.child.exitCode !== null || p.child.signalCode !== null ? `exited with ${p.child.exitCode ?? p.child.signalCode}` : undefined);
}

async function startHaproxy(o: StartOptions): Promise<Instance> {
  const port = unusedPort();
  const cfg = join(o.dir, 'haproxy.cfg');
  // No global maxconn: HAProxy derives it from the open-files limit (~10k with 20000 fds).
  // Timeouts as fproxy's defaults: 5 s connect, 1 h idle.
  writeFileSync(
    cfg,
    `global
  nbthread ${o.cores}
defaults
  mode tcp
  timeout connect 5s
  timeout client 1h
  timeout server 1h
listen bench
  bind 127.0.0.1:${port}
  server upstream 127.0.0.1:${o.upstreamPort}
`,
  );
  const log = join(o.dir, 'haproxy.log');
  const fd = openSync(log, 'a');
  let p: Spawned;
  try {
    p = start('haproxy', ['-f', cfg, '-db'], { stdio: ['ignore', fd, fd] });
  } finally {
    closeSync(fd);
  }
  return {
    port,
    exited: exitedOf(p),
    pids: () => [p.pid, ...descendants(p.pid)],
    listenerPids: async () => [p.pid],
    stop: () => p.stop(),
    logs: [log],
  };
}

async function startNginxStream(o: StartOptions): Promise<Instance> {
  const port = unusedPort();
  const conf = join(o.dir, 'nginx.conf');
  mkdirSync(join(o.dir, 'logs'), { recursive: true });
  const errorLog = join(o.dir, 'logs/error.log');
  // worker_connections: each proxied connection takes two; 5,000 idle ones may land on one worker.
  writeFileSync(
    conf,
    `load_module ${NGINX_STREAM_MODULE};
worker_processes ${o.cores};
worker_rlimit_nofile 20000;
pid ${o.dir}/nginx.pid;
error_log ${errorLog} warn;
events { worker_connections 12000; }
stream {
  server {
    listen 127.0.0.1:${port};
    proxy_pass 127.0.0.1:${o.upstreamPort};
  }
}
`,
  );
  const p = start('nginx', ['-p', o.dir, '-e', errorLog, '-c', conf, '-g', 'daemon off;']);
  return {
    port,
    exited: exitedOf(p),
    pids: () => [p.pid, ...descendants(p.pid)],
    listenerPids: async () => descendants(p.pid),
    stop: () => p.stop(),
    logs: [errorLog],
  };
}

async function startFproxy(o: StartOptions, env: NodeJS.ProcessEnv = {}, workers?: number): Promise<Instance> {
  const config = join(o.dir, 'config.json');
  // Port 0: the kernel picks it when the app starts; /apps says which.
  writeConfigAtomically(config, [{ Name: 'bench', Ports: [0], Targets: [`127.0.0.1:${o.upstreamPort}`], ...(workers === undefined ? {} : { Workers: workers }) }]);
  const d = startDaemon(o.dir, config, 'fproxy', env);
  const port = await waitFor('the fproxy bench app\'s port in /apps', 60_000, async () => {
    if (d.proc.child.exitCode !== null) throw new Error(`fproxy daemon exited with ${d.proc.child.exitCode}; log: ${d.logPath}`);
    const p = (await getApps(await d.admin(60_000))).find((a) => a.name === 'bench')?.ports[0];
    return p !== undefined && p > 0 ? p : undefined;
  }, 50);
  return {
    port,
    exited: exitedOf(d.proc),
    pids: d.pids,
    listenerPids: async () => {
      const app = (await getApps(await d.admin(10_000))).find((a) => a.name === 'bench');
      return app ? [...app.pids] : d.listenerPids();
    },
    // Listeners bind before they report `ready`: the port may answer before the daemon says so.
    ready: async () => {
      const app = (await getApps(await d.admin(10_000))).find((a) => a.name === 'bench');
      return app?.state === 'running' && app.pids.length > 0;
    },
    stop: d.stop,
    logs: [d.logPath],
  };
}
