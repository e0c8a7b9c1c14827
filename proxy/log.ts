// One pino logger per process, bound to {proc, app, gen}. Logs are NDJSON on stdout; pretty-printing
// is a terminal concern done outside the hot processes (with pino 10, a pino-pretty transport runs a
// worker thread and adds ~17 MB RSS to each process that has one).
import { pino, type Logger } from 'pino';

export type { Logger };

const LEVELS = ['fatal', 'error', 'warn', 'info', 'debug', 'trace', 'silent'] as const;
export type LogLevel = (typeof LEVELS)[number];

export class LogLevelError extends Error {
  readonly code = 'ERR_LOG_LEVEL';
  constructor(value: string) {
    super(`Invalid LOG_LEVEL "${value}": use one of ${LEVELS.join(', ')}`);
  }
}

/** Reads LOG_LEVEL (default info). Throws LogLevelError on anything pino would reject. */
export function logLevelFromEnv(env: NodeJS.ProcessEnv = process.env): LogLevel {
  const raw = (env.LOG_LEVEL ?? 'info').trim().toLowerCase();
  if (!(LEVELS as readonly string[]).includes(raw)) throw new LogLevelError(env.LOG_LEVEL ?? '');
  return raw as LogLevel;
}

export function createLogger(bindings: Record<string, unknown>, level: LogLevel = logLevelFromEnv(), destination?: NodeJS.WritableStream): Logger {
  const options = { level, base: { pid: process.pid, ...bindings }, timestamp: pino.stdTimeFunctions.isoTime };
  return destination ? pino(options, destination) : pino(options);
}
