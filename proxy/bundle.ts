// The listener's process entry as plain JavaScript. A process that runs `.ts` through Node's type
// stripping loads the stripper too: measured on an idle listener, 89 MB RSS / 38.8 MB PSS as .ts
// against 55 MB / 13.1 MB bundled. With a process per app and worker that is most of the memory,
// so the daemon bundles proxy/main.ts once at start (esbuild, ~50 ms; npm packages other than zod stay
// external and load from node_modules) and forks the bundle. Always built from the current sources, so it
// can never be stale; if the build fails, the daemon forks the .ts entry and says so.
import { createHash } from 'node:crypto';
import { existsSync, mkdirSync, renameSync, rmSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

/** The listener entry (TypeScript source); the one place its path is written. */
export const LISTENER_SOURCE = new URL('./main.ts', import.meta.url);
const OUT_DIR = new URL('../node_modules/.cache/fproxy/', import.meta.url);

export interface ListenerEntry {
  /** What to fork. */
  readonly url: URL;
  readonly bundled: boolean;
  /** Why the .ts entry is used, when it is. */
  readonly reason?: string;
}

/** Bundle proxy/main.ts to node_modules/.cache/fproxy/listener-<hash>/main.mjs; fall back to the .ts file. */
export async function buildListenerEntry(): Promise<ListenerEntry> {
  if (process.env.FPROXY_LISTENER_TS === '1') return { url: LISTENER_SOURCE, bundled: false, reason: 'FPROXY_LISTENER_TS=1' };
  let esbuild: typeof import('esbuild') | undefined;
  try {
    esbuild = await import('esbuild');
    // Code splitting: modules imported lazily (the TLS terminator and node:tls, ~3 MB per process)
    // land in their own chunk, loaded only by the apps that use them.
    const outdir = fileURLToPath(new URL('./build/', OUT_DIR));
    const result = await esbuild.build({
      entryPoints: { main: fileURLToPath(LISTENER_SOURCE) },
      write: false,
      bundle: true,
      splitting: true,
      outdir,
      outExtension: { '.js': '.mjs' },
      chunkNames: 'chunk-[hash]',
      platform: 'node',
      format: 'esm',
      target: 'node24',
      // npm packages load from node_modules, except zod (IPC validation): zod/mini bundled and
      // tree-shaken is ~30 KB and ~1 MB per process, loaded from node_modules ~16 MB (measured PSS).
      plugins: [externalPackagesExcept(/^zod(\/|$)/)],
      logLevel: 'silent',
    });
    const files = result.outputFiles.map((f) => ({ name: path.relative(outdir, f.path), contents: f.contents })).sort((a, b) => (a.name < b.name ? -1 : 1));
    const hash = createHash('sha256');
    for (const f of files) hash.update(f.name).update(f.contents);
    // Named by content: daemons built from the same sources share one directory, written atomically.
    const dir = new URL(`listener-${hash.digest('hex').slice(0, 16)}/`, OUT_DIR);
    const out = new URL('main.mjs', dir);
    if (!existsSync(out)) {
      const tmp = new URL(`.listener-${process.pid}-${Date.now()}/`, OUT_DIR);
      mkdirSync(tmp, { recursive: true });
      for (const f of files) writeFileSync(new URL(f.name, tmp), f.contents);
      try {
        renameSync(tmp, dir);
      } catch (err) {
        // Another daemon renamed the same content into place first.
        rmSync(tmp, { recursive: true, force: true });
        if (!existsSync(out)) throw err;
      }
    }
    return { url: out, bundled: true };
  } catch (err) {
    return { url: LISTENER_SOURCE, bundled: false, reason: (err as Error).message };
  } finally {
    // The async API keeps an esbuild service process alive; the daemon has no further use for it.
    await esbuild?.stop();
  }
}

/** Every bare import (an npm package) stays external, except those `inline` matches. */
function externalPackagesExcept(inline: RegExp): import('esbuild').Plugin {
  return {
    name: 'external-packages',
    setup(build) {
      build.onResolve({ filter: /^[^./]/ }, (args) => (args.path.startsWith('node:') || inline.test(args.path) ? undefined : { external: true }));
    },
  };
}
