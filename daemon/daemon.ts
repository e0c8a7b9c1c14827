// runDaemon: the daemon process's state — one AppSupervisor per app (the fleet), the spare pool,
// the reload pipeline over the config source, and the admin endpoint. The pipeline
// (reload-pipeline.ts) turns source content into plans; this module carries them out with
// supervisors and answers status.
import type { ListenerSpec } from '../proxy/index.ts';
import type { ConfigSource, SourceStatus } from './config-source/config-source.ts';
import { sourceFromEnv } from './config-source/source-from-env.ts';
import type { LoadedConfig } from './config/load.ts';
import { AdminServer, DEFAULT_ADMIN_ADDR, parseAdminAddr, RawBody } from './admin-server.ts';
import { dashboardRoutes } from './dashboard/dashboard-routes.ts';
import { DaemonMetrics } from './metrics/daemon-metrics.ts';
import type { AdminAddress } from './admin-server.ts';
import { AppSupervisor } from './app-supervisor.ts';
import type { AppStatus } from './app-supervisor.ts';
import { BACKOFF_DEFAULTS } from './backoff-delay.ts';
import { DaemonError } from './daemon-error.ts';
import type { SupervisionTiming } from './generation.ts';
import { LISTENER_TIMING } from './listener-process.ts';
import { buildListenerEntry, LISTENER_SOURCE } from '../proxy/index.ts';
import { createDaemonLogger } from './logger.ts';
import type { Logger } from './logger.ts';
import { MIGRATE_REQ_PATH, ensureMigrateReq, parseMigrateReqMode } from './migrate-req.ts';
import { forkListener } from './fork-listener.ts';
import { SparePool } from './spare-pool.ts';
import type { MigrateReqStatus } from './migrate-req.ts';
import { loadFromSource, ReloadPipeline, toConfigErrorStatus } from './reload-pipeline.ts';
import type { AppFleet, ConfigErrorStatus } from './reload-pipeline.ts';
import { hostResolver } from './health/resolve-host.ts';
import { AdminAuth, adminToken, isLoopbackHost } from './admin/admin-auth.ts';
import { adminRoutes } from './admin/admin-routes.ts';
import { ConfigWriter } from './admin/config-writer.ts';
import { AdminError } from './admin/router.ts';
import type { ResolveHost } from './health/resolve-host.ts';

export interface DaemonOptions {
  /** Default: FPROXY_CONFIG_PATH, else ./config.json. Ignored when `source` is given. */
  readonly configPath?: string;
  /** Where the config comes from. Default: the file at configPath. */
  readonly source?: ConfigSource;
  /** Default: FPROXY_ADMIN_ADDR, else 127.0.0.1:9900. ":0" picks a free port. */
  readonly adminAddr?: string;
  readonly logger?: Logger;
  readonly timing?: Partial<SupervisionTiming>;
  /** The listener entry to fork; default proxy/main.ts. */
  readonly listenerEntry?: URL;
  /** Idle listeners kept forked ahead of need (fast rollouts and restarts). Default: FPROXY_SPARE_LISTENERS, else 2; 0 = none. */
  readonly spares?: number;
  readonly env?: NodeJS.ProcessEnv;
}

export const SUPERVISION_TIMING: SupervisionTiming = { ...LISTENER_TIMING, backoff: BACKOFF_DEFAULTS, stableMs: 10_000 };

export type { ConfigErrorStatus };

/** GET /status. */
export interface DaemonStatus {
  readonly pid: number;
  readonly config: { readonly path: string; readonly hash: string | null; readonly appliedAt: string | null; readonly error: ConfigErrorStatus | null };
  /** Where the config comes from and whether it is reachable (etcd: {kind, connected, revision, servingFrom, staleMs …}). */
  readonly source: SourceStatus;
  readonly migrateReq: MigrateReqStatus;
  /** Idle listeners forked ahead of need, right now. */
  readonly spares: number;
  readonly reconciles: number;
  readonly apps: AppStatus[];
}

export interface Daemon {
  readonly configPath: string;
  readonly adminAddress: AdminAddress;
  /** Re-read the config now (SIGHUP). Resolves once that read and any reconcile it caused are done. */
  reload(reason?: string): Promise<void>;
  /** Stop accepting everywhere, drain every listener (up to its drainTimeoutMs, then kill), close the admin endpoint. */
  stop(reason?: string): Promise<void>;
  apps(): AppStatus[];
  status(): DaemonStatus;
}

export async function runDaemon(options: DaemonOptions = {}): Promise<Daemon> {
  const env = options.env ?? process.env;
  const logger = options.logger ?? createDaemonLogger(env);
  const source = options.source ?? sourceFromEnv(options.configPath ?? env.FPROXY_CONFIG_PATH ?? 'config.json', logger, env);
  const adminAddr = parseAdminAddr(options.adminAddr ?? env.FPROXY_ADMIN_ADDR ?? DEFAULT_ADMIN_ADDR);
  const spares = options.spares ?? parseSpares(env.FPROXY_SPARE_LISTENERS);
  const heartbeatMs = parseHeartbeat(env.FPROXY_HEARTBEAT_MS);
  const token = adminToken(env);
  // Anyone who can reach the admin address could otherwise rewrite the config: refuse to start.
  if (token === undefined && !isLoopbackHost(adminAddr.host)) {
    throw new DaemonError('ERR_ADMIN_INSECURE', `Refusing to serve the admin API on ${adminAddr.host}:${adminAddr.port} (not loopback) without a token: set FPROXY_ADMIN_TOKEN or FPROXY_ADMIN_TOKEN_FILE, or bind FPROXY_ADMIN_ADDR to 127.0.0.1`);
  }

  let initial: LoadedConfig;
  try {
    initial = await loadFromSource(source);
  } catch (err) {
    const e = toConfigErrorStatus(err, source.describe());
    throw new DaemonError(e.code, e.message, { cause: err });
  }
  // Listeners run as bundled JS (proxy/bundle.ts: a third of the memory of a type-stripped process).
  let listenerEntry = options.listenerEntry;
  if (listenerEntry === undefined) {
    const built = await buildListenerEntry();
    if (!built.bundled) logger.warn({ reason: built.reason }, 'listeners run from TypeScript sources (more memory per process)');
    listenerEntry = built.url;
  }
  const daemon = new DaemonProcess({ logger, source, auth: new AdminAuth(token), options: { ...options, spares, listenerEntry, timing: { ...(heartbeatMs ? { heartbeatMs } : {}), ...options.timing } }, env });
  await daemon.init(initial, adminAddr);
  return daemon;
}

class DaemonProcess implements Daemon, AppFleet {
  readonly configPath: string;
  adminAddress: AdminAddress = { host: '', port: 0 };
  readonly #log: Logger;
  readonly #timing: SupervisionTiming;
  readonly #entry: URL;
  readonly #env: NodeJS.ProcessEnv;
  readonly #spareCount: number;
  #spares: SparePool | undefined;
  readonly #apps = new Map<string, AppSupervisor>();
  /** Removed apps still draining, shown in status as "draining". */
  readonly #retiring = new Set<AppSupervisor>();
  readonly #generations = new Map<string, number>();
  readonly #admin: AdminServer;
  readonly #pipeline: ReloadPipeline;
  readonly #resolveHost: ResolveHost;
  readonly #metrics = new DaemonMetrics({ apps: () => [...this.#apps.values(), ...this.#retiring] });
  readonly #source: ConfigSource;
  #migrateReq: MigrateReqStatus = { enabled: false, changed: false, reason: 'not checked yet' };
  #stopping: Promise<void> | undefined;

  constructor(args: { logger: Logger; source: ConfigSource; auth: AdminAuth; options: DaemonOptions; env: NodeJS.ProcessEnv }) {
    this.#log = args.logger;
    this.configPath = args.source.describe();
    this.#source = args.source;
    this.#pipeline = new ReloadPipeline({ source: args.source, fleet: this, logger: args.logger, onReload: (result, ok) => this.#metrics.reload(result, ok) });
    this.#timing = { ...SUPERVISION_TIMING, ...args.options.timing };
    this.#entry = args.options.listenerEntry ?? LISTENER_SOURCE;
    this.#env = args.env;
    this.#spareCount = args.options.spares ?? 0;
    this.#resolveHost = hostResolver(args.env);
    const writer = new ConfigWriter({
      source: args.source,
      logger: args.logger,
      apply: (loaded) => this.#pipeline.apply(loaded),
      app: (name) => {
        const status = this.#apps.get(name)?.status();
        return status === undefined ? undefined : { generation: status.generation, error: status.currentError?.message ?? null };
      },
    });
    this.#admin = new AdminServer({
      '/healthz': () => 'ok',
      '/apps': () => this.apps(),
      '/status': () => this.status(),
      '/metrics': async () => new RawBody(this.#metrics.contentType, await this.#metrics.render()),
      '/stats': async () => ({ pid: process.pid, config: this.status().config, ...(await this.#metrics.stats(this.apps())) }),
      ...dashboardRoutes(),
    }, {
      auth: args.auth,
      routes: adminRoutes({
        writer,
        setDrain: (app, target, drain) => this.#setDrain(app, target, drain),
        reload: async () => {
          await this.reload('admin API');
          const { hash, error } = this.#pipeline.status();
          return { reloaded: true, hash, error: error === null ? null : { code: error.code, message: error.message } };
        },
      }),
    });
  }

  async init(initial: LoadedConfig, adminAddr: AdminAddress): Promise<void> {
    // Before any listener socket exists: the sysctl only affects sockets created after it.
    this.#migrateReq = await ensureMigrateReq(this.#log, MIGRATE_REQ_PATH, parseMigrateReqMode(this.#env.FPROXY_MIGRATE_REQ));
    this.adminAddress = await this.#admin.listen(adminAddr);
    const address = `${formatHost(this.adminAddress.host)}:${this.adminAddress.port}`;
    // `event` and `address` are the stable, machine-readable part (tests and scripts key on them).
    this.#log.info({ event: 'admin-listening', address, admin: address, config: this.configPath }, 'admin endpoint listening');
    if (this.#spareCount > 0) this.#spares = new SparePool({ size: this.#spareCount, entry: this.#entry, env: this.#env, logger: this.#log, backoff: this.#timing.backoff });
    await this.#pipeline.start(initial);
  }

  reload(reason = 'reload'): Promise<void> {
    return this.#pipeline.reload(reason);
  }

  stop(reason = 'stop'): Promise<void> {
    this.#stopping ??= this.#stop(reason);
    return this.#stopping;
  }

  apps(): AppStatus[] {
    const all = [...this.#apps.values(), ...this.#retiring].map((s) => s.status());
    return all.sort((a, b) => a.name.localeCompare(b.name) || a.generation - b.generation);
  }

  status(): DaemonStatus {
    const { reconciles, ...config } = this.#pipeline.status();
    return {
      pid: process.pid,
      config: { path: this.configPath, ...config },
      source: this.#source.status(),
      migrateReq: this.#migrateReq,
      spares: this.#spares?.size ?? 0,
      reconciles,
      apps: this.apps(),
    };
  }

  // ---- AppFleet: what the reload pipeline's plans are carried out with ----

  specs(): Map<string, ListenerSpec> {
    const specs = new Map<string, ListenerSpec>();
    for (const [name, sup] of this.#apps) if (sup.spec) specs.set(name, sup.spec);
    return specs;
  }

  retire(name: string): Promise<void> {
    return this.#retire(name);
  }

  rollout(name: string, spec: ListenerSpec): Promise<boolean> {
    return this.#apps.get(name)!.apply(spec);
  }

  start(name: string, spec: ListenerSpec): Promise<boolean> {
    const sup = new AppSupervisor({
      name,
      logger: this.#log,
      timing: this.#timing,
      acquire: () => this.#spares?.take() ?? forkListener(this.#entry, this.#env),
      resolveHost: this.#resolveHost,
      metrics: this.#metrics,
      nextGeneration: () => {
        const n = (this.#generations.get(name) ?? 0) + 1;
        this.#generations.set(name, n);
        return n;
      },
    });
    this.#apps.set(name, sup);
    return sup.apply(spec);
  }

  stopping(): boolean {
    return this.#stopping !== undefined;
  }

  #setDrain(app: string, target: string, drain: boolean): void {
    const sup = this.#apps.get(app);
    if (sup === undefined) throw new AdminError(404, 'ERR_APP_NOT_FOUND', 'No such app', `No app named "${app}" is running; apps: ${[...this.#apps.keys()].join(', ') || '(none)'}`);
    if (!sup.hasTarget(target)) throw new AdminError(404, 'ERR_TARGET_NOT_FOUND', 'No such target', `App "${app}" has no target ${target}; targets: ${sup.status().health.map((h) => h.target).join(', ')}`);
    sup.setDrain(target, drain);
  }

  async #retire(name: string): Promise<void> {
    const sup = this.#apps.get(name);
    if (sup === undefined) return;
    this.#apps.delete(name);
    this.#retiring.add(sup);
    await sup.stop();
    void sup.exited().then(() => this.#retiring.delete(sup));
  }

  async #stop(reason: string): Promise<void> {
    this.#log.info({ reason }, 'stopping: draining every listener');
    this.#spares?.close();
    await this.#pipeline.stopWatching();
    const all = [...this.#apps.values(), ...this.#retiring];
    await Promise.all(all.map((s) => s.stop()));
    this.#log.info({ event: 'drain-started', apps: all.length }, 'every listener stopped accepting; waiting for open connections');
    await Promise.all(all.map((s) => s.exited()));
    // A reconcile that was mid-start when we began has seen #stopping and killed what it started.
    await this.#pipeline.settled();
    await this.#admin.close();
    this.#metrics.close();
    this.#log.info('stopped');
  }
}

/** FPROXY_HEARTBEAT_MS: ping interval to each listener; one that misses 3 in a row is replaced. */
function parseHeartbeat(raw: string | undefined): number | undefined {
  if (raw === undefined || raw === '') return undefined;
  const n = Number(raw);
  if (!Number.isInteger(n) || n < 100 || n > 600_000) throw new DaemonError('ERR_HEARTBEAT_INVALID', `Invalid FPROXY_HEARTBEAT_MS "${raw}": use an integer number of milliseconds from 100 to 600000`);
  return n;
}

function parseSpares(raw: string | undefined): number {
  if (raw === undefined || raw === '') return 2;
  const n = Number(raw);
  if (!Number.isInteger(n) || n < 0 || n > 64) throw new DaemonError('ERR_SPARES_INVALID', `Invalid FPROXY_SPARE_LISTENERS "${raw}": use an integer from 0 to 64`);
  return n;
}

function formatHost(host: string): string {
  return host.includes(':') ? `[${host}]` : host;
}
