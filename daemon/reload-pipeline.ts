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
//   apply(loaded): the admin API's path — the content it has just written through the source is
//   applied like any other (same loop, same plan) and the caller learns the outcome of that
//   content's reconcile; the watcher's echo of that write is skipped (same hash) so a failed
//   rollout is not retried behind the writer's back while it restores the last good content; and
//   a read that an admin write overtook is dropped (its content is older than the write's).
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

/** How one content's reconcile ended (apply()). */
export interface ApplyOutcome {
  /** Every app of the plan serves the new spec (or nothing had to change). */
  readonly applied: boolean;
  readonly hash: string;
  readonly started: readonly string[];
  readonly rolledOut: readonly string[];
  readonly stopped: readonly string[];
  /** Apps whose start or rollout failed (the old generation, if any, keeps serving). */
  readonly failed: readonly string[];
  /** Why nothing was applied: a newer content replaced it first, the daemon is stopping, the specs could not be built. */
  readonly skipped?: string;
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
  /** apply() calls so far: a read that one overtook is stale. */
  #directWrites = 0;
  #wanted: SourcedConfig | undefined;
  #reconciling: Promise<void> | undefined;
  /** Callers of apply() waiting for their content's reconcile. */
  readonly #waiters = new Map<SourcedConfig, (outcome: ApplyOutcome) => void>();
  /** The content apply() last took: the source's change event for it is not a new change. */
  #directHash: string | undefined;

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
    // `initial` was read before the watch began: an edit in between raised no event, so read once
    // more now (the same content is skipped by its hash once `initial` is applied).
    await Promise.all([this.#reconciling, this.reload('start: re-read after the watch began')]);
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

  /**
   * Apply content the caller has just written to the source; resolves once its reconcile is done
   * (every affected app's new generation serving, or failed). Serialize calls: a newer want
   * replaces an older one that has not started (then the older resolves with `skipped`).
   */
  apply(loaded: SourcedConfig): Promise<ApplyOutcome> {
    this.#directHash = loaded.hash;
    this.#directWrites++;
    if (this.#configError !== null) this.#log.info({ reason: 'admin write' }, 'config is valid again');
    this.#configError = null;
    return new Promise((resolve) => {
      this.#waiters.set(loaded, resolve);
      this.#want(loaded);
    });
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
    const writesBefore = this.#directWrites;
    let loaded: SourcedConfig;
    try {
      loaded = await loadFromSource(this.#source);
    } catch (err) {
      this.#rejectConfig(err, reason);
      return;
    }
    // An admin write applied while this read ran is at least as new as what was read: the writer
    // read the source after any edit before it (and a write that raced one fails its
    // compare-and-swap), and an edit after it raises an event of its own. Applying this read could
    // roll the apps back to content the write replaced.
    if (this.#directWrites !== writesBefore) return void this.#log.debug({ reason, hash: loaded.hash }, 'an admin write overtook this read; it is not applied');
    if (loaded.hash === this.#directHash) return void this.#log.debug({ reason, hash: loaded.hash }, 'config change is an admin write already applied');
    this.#directHash = undefined;
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
    const replaced = this.#wanted;
    if (replaced !== undefined && replaced !== loaded) this.#settle(replaced, skipped(replaced, 'a newer config replaced it before it was applied'));
    this.#wanted = loaded;
    this.#reconciling ??= this.#reconcileLoop().finally(() => {
      this.#reconciling = undefined;
      // Stopping: whoever still waits hears that nothing more is applied.
      for (const loaded of [...this.#waiters.keys()]) this.#settle(loaded, skipped(loaded, 'the daemon is stopping'));
    });
  }

  #settle(loaded: SourcedConfig, outcome: ApplyOutcome): void {
    const resolve = this.#waiters.get(loaded);
    if (resolve === undefined) return;
    this.#waiters.delete(loaded);
    resolve(outcome);
  }

  async #reconcileLoop(): Promise<void> {
    for (let wanted = this.#wanted; wanted !== undefined && !this.#fleet.stopping(); wanted = this.#wanted) {
      this.#wanted = undefined;
      if (wanted.hash === this.#appliedHash) {
        this.#log.debug({ hash: wanted.hash }, 'config content unchanged; nothing to do');
        this.#onReload?.('unchanged');
        this.#settle(wanted, { applied: true, hash: wanted.hash, started: [], rolledOut: [], stopped: [], failed: [] });
        continue;
      }
      try {
        this.#settle(wanted, await this.#reconcile(wanted));
      } catch (err) {
        // A bug, not a config problem: keep serving what runs and say so.
        this.#log.error({ err }, 'reconcile failed');
        this.#appliedHash = undefined;
        this.#settle(wanted, skipped(wanted, `reconcile failed: ${(err as Error).message}`));
      }
    }
  }

  async #reconcile(loaded: SourcedConfig): Promise<ApplyOutcome> {
    let next: Map<string, ListenerSpec>;
    try {
      next = toListenerSpecs(loaded.config, loaded.baseDir);
    } catch (err) {
      this.#rejectConfig(err, 'mapping to listener specs');
      return skipped(loaded, `the config cannot be mapped to listener specs: ${(err as Error).message}`);
    }
    const plan = planRollout(this.#fleet.specs(), next);
    this.#reconciles++;
    const started = Date.now();
    this.#log.info({ hash: loaded.hash, start: plan.start, stop: plan.stop, rollout: plan.rollout, unchanged: plan.unchanged.length }, 'applying config');

    await Promise.all(plan.stop.map((name) => this.#fleet.retire(name)));
    const applies: Promise<boolean>[] = plan.rollout.map((name) => this.#fleet.rollout(name, next.get(name)!));
    await Promise.all(applies);
    if (this.#fleet.stopping()) return skipped(loaded, 'the daemon is stopping');
    for (const name of plan.start) applies.push(this.#fleet.start(name, next.get(name)!));
    const results = await Promise.all(applies);
    const ok = results.every(Boolean);
    const failed = [...plan.rollout, ...plan.start].filter((_, i) => !results[i]);
    this.#appliedHash = ok ? loaded.hash : undefined;
    this.#appliedAt = new Date();
    this.#onReload?.('applied', ok);
    // The source keeps what every app now runs (etcd: on disk, served if it is unreachable at start).
    if (ok && loaded.version !== undefined) await this.#source.applied?.({ bytes: Buffer.from(loaded.text, 'utf8'), baseDir: loaded.baseDir, version: loaded.version });
    this.#log.info({ hash: loaded.hash, ok, ms: Date.now() - started }, ok ? 'config applied' : 'config applied with failures (see currentError in /apps): an app that never started retries by itself with backoff; a failed rollout is retried on the next change or SIGHUP');
    return { applied: ok, hash: loaded.hash, started: plan.start, rolledOut: plan.rollout, stopped: plan.stop, failed };
  }
}

function skipped(loaded: SourcedConfig, why: string): ApplyOutcome {
  return { applied: false, hash: loaded.hash, started: [], rolledOut: [], stopped: [], failed: [], skipped: why };
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
