// The listener's process entry as plain JavaScript. A process that runs `.ts` through Node's type
// stripping loads the stripper too: measured on an idle listener, 89 MB RSS / 38.8 MB PSS as .ts
// against 55 MB / 13.1 MB bundled. With a process per app and worker that is most of the memory,
// so the daemon bundles proxy/main.ts once at start (esbuild, ~50 ms; npm packages stay external
// and load from node_modules) and forks the bundle. Always built from the current sources, so it
// can never be stale; if the build fails, the daemon forks the .ts entry and says so.
import { createHash } from 'node:crypto';
import { existsSync, mkdirSync, renameSync, writeFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';

export const LISTENER_SOURCE = new URL('./main.ts', import.meta.url);
const OUT_DIR = new URL('../node_modules/.cache/fproxy/', import.meta.url);

export interface ListenerEntry {
  /** What to fork. */
  readonly url: URL;
  readonly bundled: boolean;
  /** Why the .ts entry is used, when it is. */
  readonly reason?: string;
}

/** Bundle proxy/main.ts to node_modules/.cache/fproxy/listener-<hash>.mjs; fall back to the .ts file. */
export async function buildListenerEntry(): Promise<ListenerEntry> {
  if (process.env.FPROXY_LISTENER_TS === '1') return { url: LISTENER_SOURCE, bundled: false, reason: 'FPROXY_LISTENER_TS=1' };
  let esbuild: typeof import('esbuild') | undefined;
  try {
    esbuild = await import('esbuild');
    const result = await esbuild.build({
      entryPoints: [fileURLToPath(LISTENER_SOURCE)],
      write: false,
      bundle: true,
      platform: 'node',
      format: 'esm',
      target: 'node24',
      packages: 'external',
      logLevel: 'silent',
      outfile: 'listener.mjs',
    });
    const code = result.outputFiles[0]!.contents;
    // Named by content: daemons built from the same sources share one file, written atomically.
    const out = new URL(`listener-${createHash('sha256').update(code).digest('hex').slice(0, 16)}.mjs`, OUT_DIR);
    if (!existsSync(out)) {
      mkdirSync(OUT_DIR, { recursive: true });
      const tmp = new URL(`.listener-${process.pid}.tmp`, OUT_DIR);
      writeFileSync(tmp, code);
      renameSync(tmp, out);
    }
    return { url: out, bundled: true };
  } catch (err) {
    return { url: LISTENER_SOURCE, bundled: false, reason: (err as Error).message };
  } finally {
    // The async API keeps an esbuild service process alive; the daemon has no further use for it.
    await esbuild?.stop();
  }
}
