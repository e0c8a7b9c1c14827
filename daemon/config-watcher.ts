// ConfigWatcher: tells when the config file may have new content. It watches the file's
// directory and matches the file name, because editors' atomic saves and `mv new.json config.json`
// replace the inode (a watch on the file itself goes silent after the first rename). chokidar's
// awaitWriteFinish holds an event until the size has been stable for stabilityThreshold ms, so a
// slow write is not read half-way. It only signals; reading, validating and skipping unchanged
// content (by hash) is the daemon's job. A missing file (mid-rename, deleted) is not a change.
import { basename, dirname, resolve } from 'node:path';
import { watch } from 'chokidar';
import type { FSWatcher } from 'chokidar';
import type { Logger } from './logger.ts';

export interface ConfigWatcherOptions {
  readonly path: string;
  readonly logger: Logger;
  readonly onChange: (event: string) => void;
  /** The file is gone (deleted, or mid-rename): nothing is reloaded; status may say so. */
  readonly onMissing?: () => void;
  readonly stabilityThresholdMs?: number;
}

export class ConfigWatcher {
  readonly #watcher: FSWatcher;
  readonly #ready: Promise<void>;

  constructor(options: ConfigWatcherOptions) {
    const path = resolve(options.path);
    const dir = dirname(path);
    const name = basename(path);
    this.#watcher = watch(dir, {
      ignoreInitial: true,
      depth: 0,
      // Only the directory itself and our file: editors' temp and swap files stay silent.
      ignored: (p: string) => p !== dir && basename(p) !== name,
      awaitWriteFinish: { stabilityThreshold: options.stabilityThresholdMs ?? 200, pollInterval: 50 },
    });
    this.#watcher.on('all', (event, p) => {
      if (resolve(p) !== path) return;
      if (event === 'add' || event === 'change') options.onChange(event);
      else if (event === 'unlink') {
        options.logger.warn({ path }, 'config file is missing; keeping the running config');
        options.onMissing?.();
      }
    });
    this.#watcher.on('error', (err) => options.logger.error({ err, path }, 'config watcher error'));
    this.#ready = new Promise((r) => this.#watcher.once('ready', () => r()));
  }

  /** Resolves once the initial scan is done and changes are being reported. */
  ready(): Promise<void> {
    return this.#ready;
  }

  close(): Promise<void> {
    return this.#watcher.close();
  }
}
