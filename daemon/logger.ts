// The daemon's one pino logger: NDJSON on stdout with bindings {proc: 'daemon'}. Level parsing
// and the logger shape are shared with the listeners (proxy/log.ts via proxy/index.ts), so an
// invalid LOG_LEVEL fails the same clear way (LogLevelError, code ERR_LOG_LEVEL) in both.
import { createLogger, logLevelFromEnv } from '../proxy/index.ts';
import type { Logger } from '../proxy/index.ts';
import { daemonLogDestination } from './log-output.ts';

export type { Logger };

/** Throws LogLevelError when LOG_LEVEL is not a pino level. */
export function createDaemonLogger(env: NodeJS.ProcessEnv = process.env): Logger {
  return createLogger({ proc: 'daemon' }, logLevelFromEnv(env), daemonLogDestination(env));
}
