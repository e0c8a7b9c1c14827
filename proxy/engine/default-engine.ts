// defaultEngine: the process's socket engine. Native when the addon is built and loads, unless
// FPROXY_ENGINE=js; otherwise JS, with one warning saying why. FPROXY_ENGINE_THREADS sets the
// native loop threads (default 0: the loop runs on the listener's own thread, which accepts,
// decides and connects, and FPROXY_ENGINE_OFFLOAD_THREADS offload threads forward).
import type { Engine } from './engine.ts';
import { JsEngine } from './js-engine.ts';
import { DEFAULT_OFFLOAD_THREADS, findAddon, NativeEngine } from './native-engine.ts';

let chosen: { engine: Engine; warning?: string } | undefined;

/** FPROXY_ENGINE_OFFLOAD_THREADS, or undefined if it is not an integer 1..63. */
function offloadThreads(env: NodeJS.ProcessEnv): number | undefined {
  const n = Number(env.FPROXY_ENGINE_OFFLOAD_THREADS ?? DEFAULT_OFFLOAD_THREADS);
  return Number.isInteger(n) && n >= 1 && n <= 63 ? n : undefined;
}

/**
 * How many threads one listener forwards on, for the engine `env` asks for (from the environment
 * and whether the addon is built; nothing is loaded): the native inline engine, Node's thread and
 * its offload threads; a threaded one, its loop threads; the JS engine, Node's thread (1).
 */
export function listenerThreads(env: NodeJS.ProcessEnv = process.env): number {
  if ((env.FPROXY_ENGINE ?? 'native') !== 'native' || findAddon(env) === undefined) return 1;
  const t = Number(env.FPROXY_ENGINE_THREADS ?? 0);
  const off = offloadThreads(env);
  if (!Number.isInteger(t) || t < 0 || t > 64 || off === undefined) return 1; // defaultEngine falls back to JS
  return t === 0 ? 1 + off : t;
}

/** The engine, and on the first call only, a warning to log when it is not the one asked for. */
export function defaultEngine(env: NodeJS.ProcessEnv = process.env): { engine: Engine; warning?: string } {
  if (chosen !== undefined) return { engine: chosen.engine };
  const js = new JsEngine();
  const want = env.FPROXY_ENGINE ?? 'native';
  if (want === 'js') return (chosen = { engine: js });
  if (want !== 'native') return (chosen = { engine: js, warning: `FPROXY_ENGINE="${want}" is not "native" or "js"; using the js engine` });
  const threads = Number(env.FPROXY_ENGINE_THREADS ?? 0);
  if (!Number.isInteger(threads) || threads < 0 || threads > 64) return (chosen = { engine: js, warning: `FPROXY_ENGINE_THREADS="${env.FPROXY_ENGINE_THREADS}" is not an integer 0..64; using the js engine` });
  const off = offloadThreads(env);
  if (off === undefined) return (chosen = { engine: js, warning: `FPROXY_ENGINE_OFFLOAD_THREADS="${env.FPROXY_ENGINE_OFFLOAD_THREADS}" is not an integer 1..63; using the js engine` });
  try {
    return (chosen = { engine: NativeEngine.get(js, threads, undefined, off) });
  } catch (err) {
    return (chosen = { engine: js, warning: `native engine unavailable (${(err as Error).message.split('\n')[0]}); using the js engine` });
  }
}
