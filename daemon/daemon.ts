// runDaemon: the daemon process's state — the config (last applied, last rejected), one
// AppSupervisor per app, the watcher and the admin endpoint — and the reload pipeline:
//   change event or SIGHUP → load+validate (serialized; one queued read at most)
//     → invalid: keep everything as it runs, record and log the error once with every issue
//     → valid: wanted = it → reconcile loop (one at a time; a newer wanted replaces an older one
//       that has not started, so a burst of edits converges on the last valid content)
//   reconcile: plan = planRollout(running specs, wanted specs); stop removed apps first (they
//   stop accepting before anything else binds their ports), then roll out changed ones and
//   start new ones. Content whose hash equals the last fully applied one is skipped; after a
//   failed rollout that hash is forgotten so the same content (SIGHUP, re-save) retries.
import { dirname, resolve } from 'node:path';
import { loadConfigFile } from './config/load.ts';
import { toListenerSpecs } from './config/to-spec.ts';
import { formatIssues } from './config/validate.ts';
import type { ConfigIssue } from './config/validate.ts';
import type { Config } from './config/schema.ts';
import type { ListenerSpec } from '../proxy/index.ts';
import { AdminServer, DEFAULT_ADMIN_ADDR, parseAdminAddr, RawBody } from './admin-server.ts';
import { dashboardRoutes } from './dashboard/dashboard-routes.ts';
import { DaemonMetrics } from './metrics/daemon-metrics.ts';
import type { AdminAddress } from './admin-server.ts';
import { AppSupervisor } from './app-supervisor.ts';
import type { AppStatus } from './app-supervisor.ts';
import { BACKOFF_DEFAULTS } from './backoff-delay.ts';
import { ConfigWatcher } from './config-watcher.ts';
import { DaemonError } from './daemon-error.ts';
import type { SupervisionTiming } from './generation.ts';
import { DEFAULT_LISTENER_ENTRY, LISTENER_TIMING } from './listener-process.ts';
import { buildListenerEntry } from '../proxy/index.ts';
import { createDaemonLogger } from './logger.ts';
import type { Logger } from './logger.ts';
import { ensureMigrateReq } from './migrate-req.ts';
import { forkListener, SparePool } from './spare-pool.ts';
import type { MigrateReqStatus } from './migrate-req.ts';
import { planRollout } from './plan-rollout.ts';

export interface DaemonOptions {
  /** Default: FPROXY_CONFIG_PATH, else ./config.json. */
  readonly configPath?: string;
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

export interface ConfigErrorStatus {
  readonly code: string;
  readonly message: string;
  readonly issues: readonly ConfigIssue[];
  readonly at: string;
}

/** GET /status. */
export interface DaemonStatus {
  readonly pid: number;
  readonly config: { readonly path: string; readonly hash: string | null; readonly appliedAt: string | null; readonly error: ConfigErrorStatus | null };
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

interface LoadedConfig {
  readonly config: Config;
  readonly hash: string;
}

export async function runDaemon(options: DaemonOptions = {}): Promise<Daemon> {
  const env = options.env ?? process.env;
  const logger = options.logger ?? createDaemonLogger(env);
  const configPath = resolve(options.configPath ?? env.FPROXY_CONFIG_PATH ?? 'config.json');
  const adminAddr = parseAdminAddr(options.adminAddr ?? env.FPROXY_ADMIN_ADDR ?? DEFAULT_ADMIN_ADDR);
  const spares = options.spares ?? parseSpares(env.FPROXY_SPARE_LISTENERS);
  const heartbeatMs = parseHeartbeat(env.FPROXY_HEARTBEAT_MS);

  let initial: LoadedConfig;
  try {
    initial = await loadConfigFile(configPath);
  } catch (err) {
    const e = toConfigErrorStatus(err, configPath);
    throw new DaemonError(e.code, e.message, { cause: err });
  }
  // Listeners run as bundled JS (proxy/bundle.ts: a third of the memory of a type-stripped process).
  let listenerEntry = options.listenerEntry;
  if (listenerEntry === undefined) {
    const built = await buildListenerEntry();
    if (!built.bundled) logger.warn({ reason: built.reason }, 'listeners run from TypeScript sources (more memory per process)');
    listenerEntry = built.url;
  }
  const daemon = new DaemonProcess({ logger, configPath, options: { ...options, spares, listenerEntry, timing: { ...(heartbeatMs ? { heartbeatMs } : {}), ...options.timing } }, env });
  await daemon.init(initial, adminAddr);
  return daemon;
}

class DaemonProcess implements Daemon {
  readonly configPath: string;
  adminAddress: AdminAddress = { host: '', port: 0 };
  readonly #log: Logger;
  readonly #configDir: string;
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
  readonly #metrics = new DaemonMetrics({ apps: () => [...this.#apps.values(), ...this.#retiring] });
  #watcher: ConfigWatcher | undefined;
  #migrateReq: MigrateReqStatus = { enabled: false, changed: false, reason: 'not checked yet' };
  #appliedHash: string | undefined;
  #appliedAt: Date | undefined;
  #configError: ConfigErrorStatus | null = null;
  #reconciles = 0;
  #loadChain: Promise<void> = Promise.resolve();
  #queuedLoad: Promise<void> | undefined;
  #wanted: LoadedConfig | undefined;
  #reconciling: Promise<void> | undefined;
  #stopping: Promise<void> | undefined;

  constructor(args: { logger: Logger; configPath: string; options: DaemonOptions; env: NodeJS.ProcessEnv }) {
    this.#log = args.logger;
    this.configPath = args.configPath;
    this.#configDir = dirname(args.configPath);
    this.#timing = { ...SUPERVISION_TIMING, ...args.options.timing };
    this.#entry = args.options.listenerEntry ?? DEFAULT_LISTENER_ENTRY;
    this.#env = args.env;
    this.#spareCount = args.options.spares ?? 0;
    this.#admin = new AdminServer({
      '/healthz': () => 'ok',
      '/apps': () => this.apps(),
      '/status': () => this.status(),
      '/metrics': async () => new RawBody(this.#metrics.contentType, await this.#metrics.render()),
      '/stats': async () => ({ pid: process.pid, config: this.status().config, ...(await this.#metrics.stats(this.apps())) }),
      ...dashboardRoutes(),
    });
  }

  async init(initial: LoadedConfig, adminAddr: AdminAddress): Promise<void> {
    // Before any listener socket exists: the sysctl only affects sockets created after it.
    this.#migrateReq = await ensureMigrateReq(this.#log);
    this.adminAddress = await this.#admin.listen(adminAddr);
    this.#log.info({ admin: `${formatHost(this.adminAddress.host)}:${this.adminAddress.port}`, config: this.configPath }, 'admin endpoint listening');
    if (this.#spareCount > 0) this.#spares = new SparePool({ size: this.#spareCount, entry: this.#entry, env: this.#env, logger: this.#log, backoff: this.#timing.backoff });
    this.#watcher = new ConfigWatcher({ path: this.configPath, logger: this.#log, onChange: (event) => void this.reload(`file ${event}`) });
    await this.#watcher.ready();
    this.#want(initial);
    await this.#reconciling;
  }

  reload(reason = 'reload'): Promise<void> {
    if (this.#stopping) return Promise.resolve();
    // A read already waiting will see the newest content: no need for a second one.
    if (this.#queuedLoad) return this.#queuedLoad.then(() => this.#reconciling);
    const run = this.#loadChain
      .then(async () => {
        this.#queuedLoad = undefined;
        await this.#load(reason);
      })
      .catch((err: unknown) => this.#log.error({ err, reason }, 'config reload failed'));
    this.#queuedLoad = run;
    this.#loadChain = run;
    return run.then(() => this.#reconciling);
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
    return {
      pid: process.pid,
      config: { path: this.configPath, hash: this.#appliedHash ?? null, appliedAt: this.#appliedAt?.toISOString() ?? null, error: this.#configError },
      migrateReq: this.#migrateReq,
      spares: this.#spares?.size ?? 0,
      reconciles: this.#reconciles,
      apps: this.apps(),
    };
  }

  async #load(reason: string): Promise<void> {
    let loaded: LoadedConfig;
    try {
      loaded = await loadConfigFile(this.configPath);
    } catch (err) {
      this.#rejectConfig(err, reason);
      return;
    }
    if (this.#configError !== null) this.#log.info({ reason }, 'config is valid again');
    this.#configError = null;
    this.#want(loaded);
  }

  #rejectConfig(err: unknown, reason: string): void {
    const error = toConfigErrorStatus(err, this.configPath);
    // One save can fire more than one event: the same rejection is logged once.
    const repeat = this.#configError?.message === error.message;
    this.#configError = error;
    this.#metrics.reload('rejected');
    if (repeat) return void this.#log.debug({ reason }, 'config still invalid (same issues)');
    this.#log.error({ reason, path: this.configPath, code: this.#configError.code, issues: this.#configError.issues }, `config rejected; apps keep running as they are:\n${this.#configError.message}`);
  }

  #want(loaded: LoadedConfig): void {
    this.#wanted = loaded;
    this.#reconciling ??= this.#reconcileLoop().finally(() => (this.#reconciling = undefined));
  }

  async #reconcileLoop(): Promise<void> {
    for (let wanted = this.#wanted; wanted !== undefined && !this.#stopping; wanted = this.#wanted) {
      this.#wanted = undefined;
      if (wanted.hash === this.#appliedHash) {
        this.#log.debug({ hash: wanted.hash }, 'config content unchanged; nothing to do');
        this.#metrics.reload('unchanged');
        continue;
      }
      try {
        await this.#reconcile(wanted);
      } catch (err) {
        // A bug, not a config problem: keep serving what runs and say so.
        this.#log.error({ err }, 'reconcile failed');
        this.#appliedHash = undefined;
      }
    }
  }

  async #reconcile(loaded: LoadedConfig): Promise<void> {
    let next: Map<string, ListenerSpec>;
    try {
      next = toListenerSpecs(loaded.config, this.#configDir);
    } catch (err) {
      this.#rejectConfig(err, 'mapping to listener specs');
      return;
    }
    const prev = new Map<string, ListenerSpec>();
    for (const [name, sup] of this.#apps) if (sup.spec) prev.set(name, sup.spec);
    const plan = planRollout(prev, next);
    this.#reconciles++;
    const started = Date.now();
    this.#log.info({ hash: loaded.hash, start: plan.start, stop: plan.stop, rollout: plan.rollout, unchanged: plan.unchanged.length }, 'applying config');

    await Promise.all(plan.stop.map((name) => this.#retire(name)));
    const applies: Promise<boolean>[] = plan.rollout.map((name) => this.#apps.get(name)!.apply(next.get(name)!));
    await Promise.all(applies);
    if (this.#stopping) return;
    for (const name of plan.start) {
      const sup = new AppSupervisor({
        name,
        logger: this.#log,
        timing: this.#timing,
        acquire: () => this.#spares?.take() ?? forkListener(this.#entry, this.#env),
        metrics: this.#metrics,
        nextGeneration: () => {
          const n = (this.#generations.get(name) ?? 0) + 1;
          this.#generations.set(name, n);
          return n;
        },
      });
      this.#apps.set(name, sup);
      applies.push(sup.apply(next.get(name)!));
    }
    const ok = (await Promise.all(applies)).every(Boolean);
    this.#appliedHash = ok ? loaded.hash : undefined;
    this.#appliedAt = new Date();
    this.#metrics.reload('applied', ok);
    this.#log.info({ hash: loaded.hash, ok, ms: Date.now() - started }, ok ? 'config applied' : 'config applied with failures (see app lastError); the same content is retried on the next change or SIGHUP');
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
    await this.#watcher?.close();
    const all = [...this.#apps.values(), ...this.#retiring];
    await Promise.all(all.map((s) => s.stop()));
    this.#log.info({ apps: all.length }, 'every listener stopped accepting; waiting for open connections');
    await Promise.all(all.map((s) => s.exited()));
    // A reconcile that was mid-start when we began has seen #stopping and killed what it started.
    await this.#reconciling;
    await this.#admin.close();
    this.#metrics.close();
    this.#log.info('stopped');
  }
}

function toConfigErrorStatus(err: unknown, path: string): ConfigErrorStatus {
  const e = err as { code?: unknown; message?: unknown; issues?: unknown };
  const issues: ConfigIssue[] = Array.isArray(e?.issues) ? (e.issues as ConfigIssue[]).map((i) => ({ path: String(i.path ?? ''), message: String(i.message ?? '') })) : [];
  const code = typeof e?.code === 'string' ? e.code : 'ERR_CONFIG_INVALID';
  const text = typeof e?.message === 'string' ? e.message : String(err);
  let message: string;
  if (issues.length === 0) message = `Invalid config ${path}: ${text}`;
  else if (code === 'ERR_CONFIG_READ') message = `${text}:\n${formatIssues(issues)}`;
  else message = formatIssues(issues, path);
  return { code, message, issues, at: new Date().toISOString() };
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
