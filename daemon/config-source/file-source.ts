// FileSource: the config as a JSON file. It watches the file's directory and matches the file name,
// because editors' atomic saves and `mv new.json config.json` replace the inode (a watch on the
// file itself goes silent after the first rename). chokidar's awaitWriteFinish holds an event
// until the size has been stable for stabilityThreshold ms, so a slow write is not read half-way.
// A missing file (mid-rename, deleted) is not a change: it is logged and the running config kept.
import { createHash } from 'node:crypto';
import { basename, dirname, resolve } from 'node:path';
import { watch } from 'chokidar';
import { readConfigFile } from '../config/load.ts';
import type { Logger } from '../logger.ts';
import type { ConfigSnapshot, ConfigSource, Unwatch } from './config-source.ts';

export interface FileSourceOptions {
  readonly logger: Logger;
  readonly stabilityThresholdMs?: number;
}

export class FileSource implements ConfigSource {
  readonly path: string;
  readonly #options: FileSourceOptions;

  constructor(path: string, options: FileSourceOptions) {
    this.path = resolve(path);
    this.#options = options;
  }

  async read(): Promise<ConfigSnapshot> {
    const bytes = await readConfigFile(this.path);
    return { bytes, baseDir: dirname(this.path), version: createHash('sha256').update(bytes).digest('hex') };
  }

  async watch(onChange: (reason: string) => void, onGone?: (message: string) => void): Promise<Unwatch> {
    const { path } = this;
    const { logger } = this.#options;
    const dir = dirname(path);
    const name = basename(path);
    const watcher = watch(dir, {
      ignoreInitial: true,
      depth: 0,
      // Only the directory itself and our file: editors' temp and swap files stay silent.
      ignored: (p: string) => p !== dir && basename(p) !== name,
      awaitWriteFinish: { stabilityThreshold: this.#options.stabilityThresholdMs ?? 200, pollInterval: 50 },
    });
    watcher.on('all', (event, p) => {
      if (resolve(p) !== path) return;
      if (event === 'add' || event === 'change') onChange(`file ${event}`);
      else if (event === 'unlink') {
        logger.warn({ event: 'config-missing', path }, 'config file is missing; keeping the running config');
        onGone?.(`Config file ${path} is missing (deleted, or being replaced): apps keep running as they are until it is back`);
      }
    });
    watcher.on('error', (err) => logger.error({ err, path }, 'config watcher error'));
    await new Promise<void>((r) => watcher.once('ready', () => r()));
    return () => watcher.close();
  }

  describe(): string {
    return this.path;
  }
}
