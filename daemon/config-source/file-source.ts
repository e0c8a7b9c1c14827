// FileSource: the config as a JSON file. It watches the file's directory and matches the file name,
// because editors' atomic saves and `mv new.json config.json` replace the inode (a watch on the
// file itself goes silent after the first rename). chokidar's awaitWriteFinish holds an event
// until the size has been stable for stabilityThreshold ms, so a slow write is not read half-way.
// A missing file (mid-rename, deleted) is not a change: it is logged and the running config kept.
// write() replaces the file by an atomic rename of a temp file in the same directory (readers see
// the old or the new document, never half of one); the compare with `ifVersion` and the rename run
// under one in-process lock, so two writes through this source cannot both win. An editor saving
// at the same instant can still race it: a file has no compare-and-swap.
import { createHash, randomBytes } from 'node:crypto';
import { open, rename, rm, stat } from 'node:fs/promises';
import { basename, dirname, join, resolve } from 'node:path';
import { watch } from 'chokidar';
import { readConfigFile } from '../config/load.ts';
import type { Logger } from '../logger.ts';
import { ConfigSourceError } from './config-source.ts';
import type { ConfigSnapshot, ConfigSource, SourceStatus, Unwatch } from './config-source.ts';

export interface FileSourceOptions {
  readonly logger: Logger;
  readonly stabilityThresholdMs?: number;
}

export class FileSource implements ConfigSource {
  readonly path: string;
  readonly #options: FileSourceOptions;
  #writing: Promise<unknown> = Promise.resolve();

  constructor(path: string, options: FileSourceOptions) {
    this.path = resolve(path);
    this.#options = options;
  }

  async read(): Promise<ConfigSnapshot> {
    return this.#snapshot(await readConfigFile(this.path));
  }

  write(bytes: Buffer, ifVersion: string | undefined): Promise<ConfigSnapshot> {
    const run = this.#writing.then(() => this.#write(bytes, ifVersion));
    this.#writing = run.catch(() => undefined);
    return run;
  }

  async #write(bytes: Buffer, ifVersion: string | undefined): Promise<ConfigSnapshot> {
    const { path } = this;
    let mode = 0o644;
    try {
      mode = (await stat(path)).mode & 0o7777;
    } catch {
      // No file yet (or unreadable): the write creates it; a version check below fails anyway.
    }
    if (ifVersion !== undefined) {
      let current: string;
      try {
        current = (await this.read()).version;
      } catch (err) {
        throw new ConfigSourceError('ERR_CONFIG_WRITE', `Cannot read ${path} to compare versions: ${(err as Error).message}`, { cause: err });
      }
      if (current !== ifVersion) throw new ConfigSourceError('ERR_CONFIG_CONFLICT', `${path} changed (version ${current.slice(0, 12)}…, expected ${ifVersion.slice(0, 12)}…): read it again and retry`);
    }
    const tmp = join(dirname(path), `.${basename(path)}.${process.pid}.${randomBytes(4).toString('hex')}.tmp`);
    try {
      const handle = await open(tmp, 'wx', mode);
      try {
        await handle.writeFile(bytes);
        await handle.sync();
      } finally {
        await handle.close();
      }
      await rename(tmp, path);
    } catch (err) {
      await rm(tmp, { force: true });
      throw new ConfigSourceError('ERR_CONFIG_WRITE', `Cannot write ${path}: ${(err as Error).message} (the daemon needs write access to the file and its directory)`, { cause: err });
    }
    return this.#snapshot(bytes);
  }

  #snapshot(bytes: Buffer): ConfigSnapshot {
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

  status(): SourceStatus {
    return { kind: 'file', connected: true, revision: null, servingFrom: 'file', lastContactAt: null, disconnectedSince: null, staleMs: 0 };
  }
}
