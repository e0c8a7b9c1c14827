// A Listener for one test: a spec builder with test defaults, the listener drained when the test
// ends, and a logger that keeps its lines for asserting on (match `event`, never `msg`).
import type { Engine } from '../engine/engine.ts';
import { Listener } from '../listener.ts';
import { createLogger, type Logger } from '../log.ts';
import { parseTarget } from '../parse-target.ts';
import { SPEC_DEFAULTS, type ListenerSpec, type TargetSpec } from '../spec.ts';

/** A TargetSpec from "host:port"; throws on a malformed address (a bug in the test). */
export function targetSpec(raw: string): TargetSpec {
  const parsed = parseTarget(raw);
  if (!parsed.ok) throw new Error(parsed.reason);
  return parsed.target;
}

/** A spec for tests: ports default to one ephemeral port (0). */
export function makeSpec(targets: string[], over: Partial<ListenerSpec> = {}): ListenerSpec {
  return {
    ...SPEC_DEFAULTS,
    app: 'test-app',
    ports: [0],
    targets: targets.map(targetSpec),
    routes: [],
    workers: 1,
    ...over,
  };
}

const silentLogger = createLogger({ proc: 'test' }, 'silent');

/** A listener for `spec` (on `engine`, default the process's), drained when the test ends; `port` is the first bound port, `ports` all of them. */
export async function listen(t: { after: (fn: () => unknown) => void }, spec: ListenerSpec, logger: Logger = silentLogger, engine?: Engine): Promise<{ listener: Listener; port: number; ports: number[] }> {
  const listener = new Listener(spec, engine === undefined ? { logger } : { logger, engine });
  const ports = await listener.start();
  t.after(() => listener.drain(0));
  return { listener, port: ports[0]!, ports };
}

/** A pino logger that keeps its lines (parsed) in memory, for asserting on warnings and access lines. */
export async function captureLogger(level = 'debug'): Promise<{ logger: Logger; lines: Record<string, unknown>[] }> {
  const { pino } = await import('pino');
  const lines: Record<string, unknown>[] = [];
  const logger = pino({ level }, { write: (line: string) => void lines.push(JSON.parse(line) as Record<string, unknown>) });
  return { logger, lines };
}

