// ConfigSource: where the daemon's config comes from (the seam DESIGN.md §1 names). The reload
// pipeline (daemon/reload-pipeline.ts) reads and watches whatever source it is given and never
// knows which one it has. FileSource is the one implementation today; etcd and write-through
// admin writes (`write(bytes, ifVersion)`) come later and extend this interface.
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
  /** For logs, errors and /status: the file's absolute path, an etcd key … */
  describe(): string;
}
