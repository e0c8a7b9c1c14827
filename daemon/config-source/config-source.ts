// ConfigSource: where the daemon's config comes from (the seam DESIGN.md §1 names). The reload
// pipeline (daemon/reload-pipeline.ts) reads and watches whatever source it is given and never
// knows which one it has. FileSource is one implementation; etcd is another. Admin API writes go
// through `write(bytes, ifVersion)` (a whole-document compare-and-swap), then the pipeline applies
// the content as it applies any change.
// Invariants: read() resolves a whole, consistent snapshot or throws a ConfigError
// (ERR_CONFIG_READ) naming the source and the fix; watch() only signals — reading, validating and
// skipping unchanged content are the pipeline's job — and may signal more often than the content
// changes.

export interface ConfigSnapshot {
  readonly bytes: Buffer;
  /** Directory that relative paths in the config (cert files) resolve against. */
  readonly baseDir: string;
  /** Identifies this content for compare-and-swap writes later (the file source: sha256 hex). */
  readonly version: string;
}

/** Stops watching; resolves once the source holds no watcher open. */
export type Unwatch = () => Promise<void>;

export interface ConfigSource {
  read(): Promise<ConfigSnapshot>;
  /**
   * Call onChange(reason) whenever the config may have changed. Resolves once changes are being
   * reported, so that nothing written after it is missed (a read before it may be stale: read again).
   * onGone(message): the config is no longer there (a deleted file); the running config is kept and
   * status says so until the next valid read.
   */
  watch(onChange: (reason: string) => void, onGone?: (message: string) => void): Promise<Unwatch>;
  /**
   * Atomically replace the whole document. When `ifVersion` is given and is not the current
   * version, nothing is written and it throws ConfigSourceError ERR_CONFIG_CONFLICT (HTTP 412);
   * any other failure is ERR_CONFIG_WRITE (HTTP 503). Resolves with the snapshot written, whose
   * `version` is the new version (file: sha256 hex of the bytes; etcd: the key's mod_revision).
   */
  write(bytes: Buffer, ifVersion: string | undefined): Promise<ConfigSnapshot>;
  /** For logs, errors and /status: the file's absolute path, an etcd key … */
  describe(): string;
  /** The pipeline applied this content (every app runs it). A source that can become unreachable keeps it (on disk). */
  applied?(snapshot: ConfigSnapshot): Promise<void>;
  /** GET /status `source`: what kind of source, whether it is reachable, how stale the config may be. */
  status(): SourceStatus;
}

/** GET /status `source` (etcd: {kind, connected, revision, servingFrom, lastContactAt, disconnectedSince, staleMs}). */
export interface SourceStatus {
  readonly kind: string;
  /** False while the source cannot be reached (apps keep running what they have). */
  readonly connected: boolean;
  /** The source's version of the config being served (etcd: the key's mod_revision). */
  readonly revision: string | null;
  /** Where the served config was read from: the source itself, or the last good copy on disk. */
  readonly servingFrom: 'etcd' | 'file' | 'disk' | null;
  readonly lastContactAt: string | null;
  readonly disconnectedSince: string | null;
  /** Milliseconds since the source last answered (0 while connected; null: never reached). */
  readonly staleMs: number | null;
}

export type ConfigSourceErrorCode = 'ERR_CONFIG_CONFLICT' | 'ERR_CONFIG_WRITE';

/** A failed write: ERR_CONFIG_CONFLICT (the version moved on), ERR_CONFIG_WRITE (anything else). */
export class ConfigSourceError extends Error {
  readonly code: ConfigSourceErrorCode;

  constructor(code: ConfigSourceErrorCode, message: string, options: { cause?: unknown } = {}) {
    super(message, options.cause === undefined ? undefined : { cause: options.cause });
    this.name = 'ConfigSourceError';
    this.code = code;
  }
}
