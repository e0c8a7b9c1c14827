// LastGood: the last config the daemon applied, kept on disk (FPROXY_STATE_DIR, default
// ./.fproxy-state/) so a daemon that starts while its config source is unreachable can serve it.
// One JSON file per source ({source, version, savedAt, config}), replaced by write-temp + fsync +
// rename, so a reader sees the old copy or the new one, never half of one. A copy saved for another
// source (another etcd key) is not served.
import { randomBytes } from 'node:crypto';
import { mkdir, open, readFile, rename, rm } from 'node:fs/promises';
import { join, resolve } from 'node:path';

export interface LastGoodCopy {
  readonly source: string;
  /** The source's version of this content (etcd: the key's mod_revision). */
  readonly version: string;
  readonly savedAt: string;
  readonly bytes: Buffer;
}

export const DEFAULT_STATE_DIR = '.fproxy-state';

export class LastGood {
  readonly path: string;
  readonly #source: string;

  /** `source` names what the copy came from (the etcd URL); load() ignores a copy of another source. */
  constructor(stateDir: string, source: string) {
    this.path = join(resolve(stateDir), 'last-good.json');
    this.#source = source;
  }

  async save(bytes: Buffer, version: string): Promise<void> {
    const doc: { source: string; version: string; savedAt: string; config: string } = { source: this.#source, version, savedAt: new Date().toISOString(), config: bytes.toString('utf8') };
    await mkdir(resolve(this.path, '..'), { recursive: true });
    const tmp = `${this.path}.${process.pid}.${randomBytes(4).toString('hex')}.tmp`;
    try {
      const handle = await open(tmp, 'w', 0o600);
      try {
        await handle.writeFile(JSON.stringify(doc) + '\n');
        await handle.sync();
      } finally {
        await handle.close();
      }
      await rename(tmp, this.path);
    } catch (err) {
      await rm(tmp, { force: true });
      throw err;
    }
  }

  /** The saved copy for this source, or undefined (none, unreadable, or another source's). */
  async load(): Promise<LastGoodCopy | undefined> {
    let doc: unknown;
    try {
      doc = JSON.parse(await readFile(this.path, 'utf8'));
    } catch {
      return undefined;
    }
    const d = doc as Partial<Record<'source' | 'version' | 'savedAt' | 'config', unknown>>;
    if (d.source !== this.#source || typeof d.version !== 'string' || typeof d.savedAt !== 'string' || typeof d.config !== 'string') return undefined;
    return { source: d.source, version: d.version, savedAt: d.savedAt, bytes: Buffer.from(d.config, 'utf8') };
  }
}
