// ReloadPipeline: config source → running apps.
//   change event or SIGHUP → read + validate (load; serialized, one queued read at most)
//     → invalid: keep everything as it runs, record and log the error once with every issue
//     → valid: wanted = it → reconcile loop (one at a time; a newer wanted replaces an older one
//       that has not started, so a burst of edits converges on the last valid content)
//   reconcile: content whose hash equals the last fully applied one is skipped; else
//   plan = planRollout(running specs, wanted specs) and the fleet carries it out: stop removed apps
//   first (they stop accepting before anything else binds their ports), then roll out changed ones
//   and start new ones. After a failed rollout the hash is forgotten so the same content (SIGHUP,
//   re-save) retries.
// It reads whatever ConfigSource it is given and owns no process: the fleet (the daemon) does.
import type { ListenerSpec } from '../proxy/index.ts';
import type { ConfigSource, Unwatch } from './config-source/config-source.ts';
import { loadConfig } from './config/load.ts';
import type { LoadedConfig } from './config/load.ts';
import { toListenerSpecs } from './config/to-spec.ts';
import { formatIssues } from './config/validate.ts';
import type { ConfigIssue } from './config/validate.ts';
import type { Logger } from './logger.ts';
import { planRollout } from './plan-rollout.ts';

export interface ConfigErrorStatus {
  readonly code: string;
  readonly message: string;
  readonly issues: readonly ConfigIssue[];
  readonly at: string;
}

/** What a reconcile does to apps; the daemon implements it with its supervisors. */
export interface AppFleet {
  /** The spec each app serves now, by name. */
  specs(): Map<string, ListenerSpec>;
  /** Stop a removed app; resolves once it has stopped accepting. */
  retire(name: string): Promise<void>;
  /** Roll a running app out to `spec`; false when the rollout failed (the old generation keeps serving). */
  rollout(name: string, spec: ListenerSpec): Promise<boolean>;
  /** Start a new app; false when it failed to start. */
  start(name: string, spec: ListenerSpec): Promise<boolean>;
  /** True once the daemon is stopping: no further step is taken. */
  stopping(): boolean;
}

export interface PipelineStatus {
  readonly hash: string | null;
  readonly appliedAt: string | null;
  readonly error: ConfigErrorStatus | null;
  readonly reconciles: number;
}

/** Read and validate a source's current content. Throws a ConfigError. */
export async function loadFromSource(source: ConfigSource): Promise<SourcedConfig> {
  const snapshot = await source.read();
  return { ...(await loadConfig(snapshot.bytes, snapshot.baseDir, source.describe())), version: snapshot.version };
}

/** A loaded config and the source's version of it. */
export type SourcedConfig = LoadedConfig & { readonly version?: string };

export class ReloadPipeline {
  readonly #source: ConfigSource;
  readonly #fleet: AppFleet;
  readonly #log: Logger;
  /** Counts every reload by result (fproxy_config_reloads_total). */
  readonly #onReload: ((result: 'applied' | 'rejected' | 'unchanged', fullyApplied?: boolean) => void) | undefined;
  #unwatch: Unwatch | undefined;
  #appliedHash: string | undefined;
  #appliedAt: Date | undefined;
  #configError: ConfigErrorStatus | null = null;
  #reconciles = 0;
  #loadChain: Promise<void> = Promise.resolve();
  #queuedLoad: Promise<void> | undefined;
  #wanted: SourcedConfig | undefined;
  #reconciling: Promise<void> | undefined;

  constructor(options: { source: ConfigSource; fleet: AppFleet; logger: Logger; onReload?: (result: 'applied' | 'rejected' | 'unchanged', fullyApplied?: boolean) => void }) {
    this.#onReload = options.onReload;
    this.#source = options.source;
    this.#fleet = options.fleet;
    this.#log = options.logger;
  }

  /** Watch the source, then apply `initial` (already loaded, so a bad first config fails start-up). */
  async start(initial: SourcedConfig): Promise<void> {
    this.#unwatch = await this.#source.watch((reason) => void this.reload(reason), (message) => this.#configGone(message));
    this.#want(initial);
    await this.#reconciling;
  }

  /** Re-read the source now. Resolves once that read and any reconcile it caused are done. */
  reload(reason = 'reload'): Promise<void> {
    if (this.#fleet.stopping()) return Promise.resolve();
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

  /** Stop watching the source (the daemon is stopping). */
  async stopWatching(): Promise<void> {
    await this.#unwatch?.();
  }

  /** Resolves once no reconcile runs (one mid-way when the fleet started stopping takes no further step). */
  async settled(): Promise<void> {
    await this.#reconciling;
  }

  status(): PipelineStatus {
    return { hash: this.#appliedHash ?? null, appliedAt: this.#appliedAt?.toISOString() ?? null, error: this.#configError, reconciles: this.#reconciles };
  }

  async #load(reason: string): Promise<void> {
    let loaded: SourcedConfig;
    try {
      loaded = await loadFromSource(this.#source);
    } catch (err) {
      this.#rejectConfig(err, reason);
      return;
    }
    if (this.#configError !== null) this.#log.info({ reason }, 'config is valid again');
    this.#configError = null;
    this.#want(loaded);
  }

  /** /status says the config is gone (not an older edit's error); the next valid read clears it. */
  #configGone(message: string): void {
    this.#configError = { code: 'ERR_CONFIG_MISSING', message, issues: [], at: new Date().toISOString() };
  }

  #rejectConfig(err: unknown, reason: string): void {
    const where = this.#source.describe();
    const error = toConfigErrorStatus(err, where);
    // One save can fire more than one event: the same rejection is logged once.
    const repeat = this.#configError?.message === error.message;
    this.#configError = error;
    this.#onReload?.('rejected');
    if (repeat) return void this.#log.debug({ reason }, 'config still invalid (same issues)');
    this.#log.error({ event: 'config-rejected', reason, path: where, code: error.code, issues: error.issues }, `config rejected; apps keep running as they are:\n${error.message}`);
  }

  #want(loaded: SourcedConfig): void {
    this.#wanted = loaded;
    this.#reconciling ??= this.#reconcileLoop().finally(() => (this.#reconciling = undefined));
  }

  async #reconcileLoop(): Promise<void> {
    for (let wanted = this.#wanted; wanted !== undefined && !this.#fleet.stopping(); wanted = this.#wanted) {
      this.#wanted = undefined;
      if (wanted.hash === this.#appliedHash) {
        this.#log.debug({ hash: wanted.hash }, 'config content unchanged; nothing to do');
        this.#onReload?.('unchanged');
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

  async #reconcile(loaded: SourcedConfig): Promise<void> {
    let next: Map<string, ListenerSpec>;
    try {
      next = toListenerSpecs(loaded.config, loaded.baseDir);
    } catch (err) {
      this.#rejectConfig(err, 'mapping to listener specs');
      return;
    }
    const plan = planRollout(this.#fleet.specs(), next);
    this.#reconciles++;
    const started = Date.now();
    this.#log.info({ hash: loaded.hash, start: plan.start, stop: plan.stop, rollout: plan.rollout, unchanged: plan.unchanged.length }, 'applying config');

    await Promise.all(plan.stop.map((name) => this.#fleet.retire(name)));
    const applies: Promise<boolean>[] = plan.rollout.map((name) => this.#fleet.rollout(name, next.get(name)!));
    await Promise.all(applies);
    if (this.#fleet.stopping()) return;
    for (const name of plan.start) applies.push(this.#fleet.start(name, next.get(name)!));
    const ok = (await Promise.all(applies)).every(Boolean);
    this.#appliedHash = ok ? loaded.hash : undefined;
    this.#appliedAt = new Date();
    this.#onReload?.('applied', ok);
    // The source keeps what every app now runs (etcd: on disk, served if it is unreachable at start).
    if (ok && loaded.version !== undefined) await this.#source.applied?.({ bytes: Buffer.from(loaded.text, 'utf8'), baseDir: loaded.baseDir, version: loaded.version });
    this.#log.info({ hash: loaded.hash, ok, ms: Date.now() - started }, ok ? 'config applied' : 'config applied with failures (see currentError in /apps): an app that never started retries by itself with backoff; a failed rollout is retried on the next change or SIGHUP');
  }
}

export function toConfigErrorStatus(err: unknown, path: string): ConfigErrorStatus {
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
