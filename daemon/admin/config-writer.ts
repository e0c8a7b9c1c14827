// ConfigWriter: every admin API write, one at a time (a queue), through the config source:
//   read the stored document + version → If-Match (412 on a mismatch) → edit → format → validate
//   with the config schema (400, every issue) → source.write(bytes, version read) (412 if it moved
//   meanwhile) → pipeline.apply (the normal reconcile: plan, rollouts) → 200 once applied.
// A rollout that fails is undone: the previous bytes are written back and applied again, so the
// config and the running apps both stay at the last good content (409 with each failed app's cause).
// Serializing here is what makes 20 concurrent adds land as 20: each edit starts from the document
// the previous write left.
import { createHash } from 'node:crypto';
import { ConfigError } from '../config/validate.ts';
import { loadConfig } from '../config/load.ts';
import type { LoadedConfig } from '../config/load.ts';
import type { ConfigSource } from '../config-source/config-source.ts';
import type { Logger } from '../logger.ts';
import type { ApplyOutcome, SourcedConfig } from '../reload-pipeline.ts';
import { parseJsonText } from '../config/json-text.ts';
import type { ApplyResponse } from './contract.ts';
import { AdminError } from './router.ts';

export interface ConfigWriterOptions {
  readonly source: ConfigSource;
  readonly apply: (loaded: SourcedConfig) => Promise<ApplyOutcome>;
  /** The generation app `name` serves now, and what is wrong with it (for 409s). */
  readonly app: (name: string) => { generation: number; error: string | null } | undefined;
  readonly logger: Logger;
}

/** The stored document (parsed; `undefined` when it is not JSON) and its bytes. */
export interface Stored {
  readonly bytes: Buffer;
  readonly value: unknown;
}

/** Returns the new document's bytes from the stored one. */
export type Edit = (stored: Stored) => Buffer;

export class ConfigWriter {
  readonly #options: ConfigWriterOptions;
  #queue: Promise<unknown> = Promise.resolve();

  constructor(options: ConfigWriterOptions) {
    this.#options = options;
  }

  /**
   * The stored document and its ETag, for GET /config: `"<sha256 hex of the bytes>"` whatever the
   * source (the hash /status shows; an etcd revision would not be), while the write below uses the
   * source's own version for its compare-and-swap.
   */
  async read(): Promise<{ bytes: Buffer; etag: string }> {
    try {
      const snapshot = await this.#options.source.read();
      return { bytes: snapshot.bytes, etag: `"${sha256(snapshot.bytes)}"` };
    } catch (err) {
      throw unavailable(err);
    }
  }

  write(what: string, edit: Edit, ifMatch: string | undefined): Promise<ApplyResponse> {
    const run = this.#queue.then(() => this.#write(what, edit, ifMatch));
    this.#queue = run.catch(() => undefined);
    return run;
  }

  async #write(what: string, edit: Edit, ifMatch: string | undefined): Promise<ApplyResponse> {
    const { source, logger } = this.#options;
    let snapshot;
    try {
      snapshot = await source.read();
    } catch (err) {
      throw unavailable(err);
    }
    const hash = sha256(snapshot.bytes);
    if (ifMatch !== undefined && !etagMatches(ifMatch, hash)) {
      throw new AdminError(412, 'ERR_PRECONDITION_FAILED', 'Precondition failed', `If-Match ${ifMatch} is not the config's current ETag "${hash}": GET /config again and retry`, { headers: { etag: `"${hash}"` } });
    }
    const parsed = parseJsonText(snapshot.bytes.toString('utf8'));
    const bytes = edit({ bytes: snapshot.bytes, value: parsed.ok ? parsed.value : undefined });
    let loaded: LoadedConfig;
    try {
      loaded = await loadConfig(bytes, snapshot.baseDir, source.describe());
    } catch (err) {
      if (!(err instanceof ConfigError)) throw err;
      throw new AdminError(400, err.code, 'Invalid config', `${what} would make the config invalid (${err.issues.length} problem${err.issues.length === 1 ? '' : 's'}); nothing was changed`, { extra: { issues: err.issues } });
    }
    const written = await this.#store(bytes, snapshot.version);
    logger.info({ event: 'admin-write', what, hash: loaded.hash }, 'admin write stored; applying');
    const outcome = await this.#options.apply({ ...loaded, version: written.version });
    if (outcome.applied) {
      const apps: ApplyResponse['apps'] = {};
      for (const name of [...outcome.started, ...outcome.rolledOut]) {
        const app = this.#options.app(name);
        if (app !== undefined) apps[name] = { generation: app.generation };
      }
      return { applied: true, hash: loaded.hash, apps, stopped: [...outcome.stopped] };
    }
    if (outcome.skipped !== undefined) {
      throw new AdminError(409, 'ERR_NOT_APPLIED', 'Not applied', `${what} was stored but not applied: ${outcome.skipped}`);
    }
    const failed = outcome.failed.map((app) => ({ app, message: this.#options.app(app)?.error ?? 'failed to start' }));
    logger.warn({ event: 'admin-write-failed', what, failed }, 'admin write failed to roll out; restoring the previous config');
    await this.#restore(snapshot.bytes, written.version, snapshot.baseDir);
    throw new AdminError(409, 'ERR_ROLLOUT_FAILED', 'Rollout failed',
      `${what} failed to roll out, so the previous config was restored and keeps running: ${failed.map((f) => `app "${f.app}": ${f.message}`).join('; ')}`,
      { extra: { failed } });
  }

  async #store(bytes: Buffer, version: string): Promise<{ version: string }> {
    try {
      return await this.#options.source.write(bytes, version);
    } catch (err) {
      const e = err as { code?: string; message?: string };
      if (e.code === 'ERR_CONFIG_CONFLICT') throw new AdminError(412, 'ERR_PRECONDITION_FAILED', 'Precondition failed', `The config changed while this write was prepared (${e.message}); retry`, { cause: err });
      throw new AdminError(503, e.code ?? 'ERR_CONFIG_WRITE', 'Config not writable', e.message ?? String(err), { cause: err });
    }
  }

  async #restore(previous: Buffer, version: string, baseDir: string): Promise<void> {
    const { source, logger } = this.#options;
    try {
      const restored = await source.write(previous, version);
      await this.#options.apply({ ...(await loadConfig(previous, baseDir, source.describe())), version: restored.version });
    } catch (err) {
      // The previous content was valid when read; failing here is a source problem (disk, etcd) or a concurrent edit.
      logger.error({ err, event: 'admin-restore-failed' }, 'could not restore the previous config after a failed admin write');
    }
  }
}

/** If-Match: "*", or a list of quoted (or bare) ETags; weak ones compare by their value. */
export function etagMatches(header: string, hash: string): boolean {
  return header.split(',').some((raw) => {
    const tag = raw.trim().replace(/^W\//, '');
    return tag === '*' || tag === `"${hash}"` || tag === hash;
  });
}

function sha256(bytes: Buffer): string {
  return createHash('sha256').update(bytes).digest('hex');
}

function unavailable(err: unknown): AdminError {
  return new AdminError(503, (err as { code?: string }).code ?? 'ERR_CONFIG_READ', 'Config not readable', `${(err as Error).message}${formatIssueList(err)}`, { cause: err });
}

function formatIssueList(err: unknown): string {
  const issues = (err as { issues?: { message: string }[] }).issues;
  return Array.isArray(issues) && issues.length > 0 ? `: ${issues.map((i) => i.message).join('; ')}` : '';
}
