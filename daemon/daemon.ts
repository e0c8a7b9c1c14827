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
import { connectionsTotal } from './metrics/snapshot-sum.ts';
import type { MetricsSnapshot } from '../proxy/index.ts';
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
import { summarizeError } from './daemon-error.ts';
import type { ErrorSummary } from './daemon-error.ts';
import { notifySystemd } from './systemd-notify.ts';
import { startSuccessor } from './upgrade/successor.ts';
import type { Takeover } from './upgrade/takeover.ts';
import type { AppCarry } from './app-supervisor.ts';
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
  /** Set in a successor daemon (daemon upgrade): take over from the daemon that spawned this one. */
  readonly takeover?: Takeover;
  /** Upgrade: from spawning the new daemon to it serving every app. Default: FPROXY_UPGRADE_TIMEOUT_MS, else 60000. */
  readonly upgradeTimeoutMs?: number;
}

/** GET /status `upgrade`: the last daemon upgrade this process took part in. */
export interface UpgradeStatus {
  /** none: no upgrade yet; in-progress/handed-over/failed: this daemon's upgrade to a successor; took-over: this daemon replaced `from`. */
  readonly state: 'none' | 'in-progress' | 'handed-over' | 'failed' | 'took-over';
  /** When that state began (ISO). */
  readonly at: string | null;
  /** The predecessor's pid (took-over). */
  readonly from?: number;
  /** The successor's pid (handed-over). */
  readonly to?: number;
  /** Why it failed (failed). */
  readonly error?: ErrorSummary;
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
  /** Log lines dropped on a full or broken stdout: the daemon's and every listener's (fproxy_log_lines_dropped_total summed). */
  readonly logLinesDropped: number;
  readonly upgrade: UpgradeStatus;
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
  /**
   * Replace this daemon with a new one started from the code on disk (SIGUSR2, `fproxy upgrade`).
   * Resolves true once the new one serves every app and this one has drained (the caller exits),
   * false when it failed or could not start (this daemon keeps serving; status().upgrade says why).
   */
  upgrade(): Promise<boolean>;
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
  const upgradeTimeoutMs = options.upgradeTimeoutMs ?? parseUpgradeTimeout(env.FPROXY_UPGRADE_TIMEOUT_MS);
  const daemon = new DaemonProcess({ logger, source, auth: new AdminAuth(token), options: { ...options, upgradeTimeoutMs, spares, listenerEntry, timing: { ...(heartbeatMs ? { heartbeatMs } : {}), ...options.timing } }, env });
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
  readonly #takeover: Takeover | undefined;
  readonly #upgradeTimeoutMs: number;
  #upgrade: UpgradeStatus = { state: 'none', at: null };
  #upgrading: Promise<boolean> | undefined;

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
    this.#takeover = args.options.takeover;
    this.#upgradeTimeoutMs = args.options.upgradeTimeoutMs ?? 60_000;
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
    if (this.#takeover !== undefined) return this.#initTakeover(initial, this.#takeover);
    this.adminAddress = await this.#admin.listen(adminAddr);
    this.#logAdmin();
    if (this.#spareCount > 0) this.#spares = new SparePool({ size: this.#spareCount, entry: this.#entry, env: this.#env, logger: this.#log, backoff: this.#timing.backoff });
    await this.#pipeline.start(initial);
    const failed = await notifySystemd(this.#env, { ready: true, mainPid: process.pid });
    if (failed !== undefined) this.#log.warn({ err: failed }, 'cannot tell systemd the daemon is ready');
  }

  /**
   * A successor: start every app alongside the old daemon's listeners (their ports, health carried),
   * and only when every app the old daemon serves is serving here, take its admin socket and say so.
   * Any failure: tell the old daemon (it keeps serving), drain what started here, throw.
   */
  async #initTakeover(initial: LoadedConfig, takeover: Takeover): Promise<void> {
    const from = takeover.carry.fromPid;
    try {
      if (this.#spareCount > 0) this.#spares = new SparePool({ size: this.#spareCount, entry: this.#entry, env: this.#env, logger: this.#log, backoff: this.#timing.backoff });
      await this.#pipeline.start(initial);
      for (const name of Object.keys(takeover.carry.apps)) {
        const app = this.#apps.get(name)?.status();
        if (app === undefined) continue; // removed from the config meanwhile: the old daemon's copy drains
        if (app.state !== 'running') {
          throw new DaemonError('ERR_UPGRADE_APP', `App "${name}" is not serving in the new daemon (${app.state}): ${app.currentError?.message ?? 'no worker ready'}`);
        }
      }
      const { admin, metrics, daemon } = await takeover.ready(this.#upgradeTimeoutMs);
      this.#carryMetrics(metrics);
      if (daemon !== undefined) this.#metrics.carryCounters(daemon);
      if (admin === undefined) throw new DaemonError('ERR_UPGRADE_PROTOCOL', 'The old daemon handed over no admin socket');
      this.adminAddress = this.#admin.adopt(admin);
    } catch (err) {
      this.#log.error({ event: 'upgrade-failed', from, err: (err as Error).message }, 'taking over from the old daemon failed; it keeps serving');
      await takeover.failed(err);
      await this.stop('upgrade failed');
      throw err;
    }
    this.#upgrade = { state: 'took-over', at: new Date().toISOString(), from };
    const failed = await notifySystemd(this.#env, { mainPid: process.pid, ready: true });
    if (failed !== undefined) this.#log.warn({ err: failed }, 'cannot tell systemd the new main pid; a Type=notify unit may take the old daemon\'s exit for a stop');
    takeover.tookOver((totals) => this.#carryMetrics(totals), (app, part) => {
      const taken = this.#apps.get(app)?.adopt(part) ?? false;
      if (!taken) this.#log.warn({ event: 'handover-dropped', app, from: part.from, id: part.id }, 'no ready worker for a connection the old daemon handed over; it is closed');
      return taken;
    });
    this.#logAdmin({ upgradedFrom: from });
  }

  #carryMetrics(totals: readonly unknown[]): void {
    this.#log.info({ event: 'upgrade-metrics', connections: (totals as MetricsSnapshot[]).map((s) => [s.app, connectionsTotal(s)]) }, 'metrics totals from the old daemon');
    try {
      this.#metrics.carryOver(totals as Parameters<DaemonMetrics['carryOver']>[0]);
    } catch (err) {
      // Another fproxy version's snapshot shape: counters restart from ours rather than break /metrics.
      this.#log.warn({ err }, 'cannot add the old daemon\'s metrics totals; counters restart');
    }
  }

  #logAdmin(extra: Record<string, unknown> = {}): void {
    const address = `${formatHost(this.adminAddress.host)}:${this.adminAddress.port}`;
    // `event` and `address` are the stable, machine-readable part (tests and scripts key on them).
    this.#log.info({ event: 'admin-listening', address, admin: address, config: this.configPath, ...extra }, 'admin endpoint listening');
  }

  upgrade(): Promise<boolean> {
    if (this.#stopping !== undefined) return Promise.resolve(false);
    if (this.#upgrading !== undefined) {
      this.#log.warn({ event: 'upgrade-busy' }, 'an upgrade is already in progress; this request joins it');
      return this.#upgrading;
    }
    this.#upgrading = this.#runUpgrade().finally(() => (this.#upgrading = undefined));
    return this.#upgrading;
  }

  async #runUpgrade(): Promise<boolean> {
    this.#upgrade = { state: 'in-progress', at: new Date().toISOString() };
    if (this.#takeover !== undefined) {
      // Our own predecessor may still drain: its final totals must reach us before we hand ours on.
      await this.#takeover.settled;
    }
    this.#log.info({ event: 'upgrade-started' }, 'upgrading: starting a new daemon from the code on disk beside this one');
    const apps: Record<string, AppCarry> = {};
    for (const [name, sup] of this.#apps) {
      const carry = sup.carry();
      if (carry !== undefined) apps[name] = carry;
    }
    let successor;
    try {
      successor = await startSuccessor({
        logger: this.#log,
        env: this.#env,
        carry: { fromPid: process.pid, apps },
        admin: () => this.#admin.listening,
        totals: () => this.#metrics.totals(),
        counters: () => this.#metrics.counters(),
        timeoutMs: this.#upgradeTimeoutMs,
      });
    } catch (err) {
      const error = summarizeError(err);
      this.#upgrade = { state: 'failed', at: new Date().toISOString(), error };
      this.#log.error({ event: 'upgrade-failed', code: error.code, err: error.message }, 'upgrade failed; this daemon keeps serving');
      return false;
    }
    this.#upgrade = { state: 'handed-over', at: new Date().toISOString(), to: successor.pid };
    this.#log.info({ event: 'upgrade-handed-over', to: successor.pid }, 'the new daemon serves every app; draining this one');
    // Its admin copy first: from now on only the new daemon answers (same socket, nothing refused).
    await this.#admin.close();
    // Established connections go to the new daemon's workers (issue 16 §2), through it.
    for (const sup of this.#apps.values()) sup.handOverTo = (app, part) => successor.relay(app, part);
    this.#stopping ??= this.#stop('upgrade', true);
    await this.#stopping;
    const final = await this.#metrics.totals();
    this.#log.info({ event: 'upgrade-final-metrics', connections: final.map((s) => [s.app, connectionsTotal(s)]) }, 'final totals to the new daemon');
    await successor.finish(final);
    return true;
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
      logLinesDropped: this.#metrics.logLinesDropped(),
      upgrade: this.#upgrade,
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
    // Carried state applies to the first start after a takeover only (a later re-add starts afresh).
    const carried = this.#upgrade.state === 'none' ? this.#takeover?.carry.apps[name] : undefined;
    const sup = new AppSupervisor({
      ...(carried === undefined ? {} : { carried }),
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

  async #stop(reason: string, handOver = false): Promise<void> {
    this.#log.info({ reason }, 'stopping: draining every listener');
    this.#spares?.close();
    await this.#pipeline.stopWatching();
    const all = [...this.#apps.values(), ...this.#retiring];
    await Promise.all(all.map((s) => s.stop(handOver)));
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

function parseUpgradeTimeout(raw: string | undefined): number {
  if (raw === undefined || raw === '') return 60_000;
  const n = Number(raw);
  if (!Number.isInteger(n) || n < 1000 || n > 3_600_000) throw new DaemonError('ERR_UPGRADE_TIMEOUT_INVALID', `Invalid FPROXY_UPGRADE_TIMEOUT_MS "${raw}": use an integer number of milliseconds from 1000 to 3600000`);
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
