// defaultEngine: the process's socket engine. Native when the addon is built and loads, unless
// FPROXY_ENGINE=js; otherwise JS, with one warning saying why. FPROXY_ENGINE_THREADS sets the
// native loop threads (default 0: the loop runs on the listener's own thread, no hand-off between
// threads per connection; a listener process per worker already spreads apps over cores).
import type { Engine } from './engine.ts';
import { JsEngine } from './js-engine.ts';
import { NativeEngine } from './native-engine.ts';

let chosen: { engine: Engine; warning?: string } | undefined;

/** The engine, and on the first call only, a warning to log when it is not the one asked for. */
export function defaultEngine(env: NodeJS.ProcessEnv = process.env): { engine: Engine; warning?: string } {
  if (chosen !== undefined) return { engine: chosen.engine };
  const js = new JsEngine();
  const want = env.FPROXY_ENGINE ?? 'native';
  if (want === 'js') return (chosen = { engine: js });
  if (want !== 'native') return (chosen = { engine: js, warning: `FPROXY_ENGINE="${want}" is not "native" or "js"; using the js engine` });
  const threads = Number(env.FPROXY_ENGINE_THREADS ?? 0);
  if (!Number.isInteger(threads) || threads < 0 || threads > 64) return (chosen = { engine: js, warning: `FPROXY_ENGINE_THREADS="${env.FPROXY_ENGINE_THREADS}" is not an integer 0..64; using the js engine` });
  try {
    return (chosen = { engine: NativeEngine.get(js, threads) });
  } catch (err) {
    return (chosen = { engine: js, warning: `native engine unavailable (${(err as Error).message.split('\n')[0]}); using the js engine` });
  }
}
