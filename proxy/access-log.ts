// AccessLog: one JSON line per closed connection when the app sets "AccessLog": true (HAProxy's
// tcplog timers and termination state, as JSON fields): app, client, sni, alpn, target, endpoint,
// attempts, outcome, code, bytesIn, bytesOut, connectMs, durationMs. It goes through the
// listener's pino logger at info (stdout), or, when FPROXY_ACCESS_LOG names a file, to that file
// (appended; reopen() on SIGUSR1 so logrotate can move it away: proxy/main.ts wires the signal,
// the daemon forwards its own SIGUSR1 to every listener).
//
// Invariants: one line per session, written at close, never per chunk; a file that cannot be opened
// fails the listener's start (a clear error), never a connection.
import { pino } from 'pino';
import type { Logger } from './log.ts';

export interface AccessRecord {
  readonly client: string | undefined;
  readonly sni: string | undefined;
  readonly alpn: string | undefined;
  readonly target: string | undefined;
  readonly endpoint: string | undefined;
  readonly attempts: number;
  readonly outcome: string;
  readonly code: string | undefined;
  readonly bytesIn: number;
  readonly bytesOut: number;
  /** -1 when no connect completed. */
  readonly connectMs: number;
  readonly durationMs: number;
}

export class AccessLogError extends Error {
  readonly code = 'ERR_ACCESS_LOG';
}

export class AccessLog {
  readonly #logger: Logger;
  readonly #reopen: () => void;
  readonly #close: () => Promise<void>;

  private constructor(logger: Logger, reopen: () => void, close: () => Promise<void>) {
    this.#logger = logger;
    this.#reopen = reopen;
    this.#close = close;
  }

  /**
   * `file` (FPROXY_ACCESS_LOG) set: lines go there, with `bindings` as the base fields; else through
   * `logger`. Throws AccessLogError when the file cannot be opened for appending.
   */
  static open(app: string, logger: Logger, bindings: Record<string, unknown>, file: string | undefined): AccessLog {
    if (file === undefined || file === '') return new AccessLog(logger.bindings().app === undefined ? logger.child({ app }) : logger, () => {}, () => Promise.resolve());
    let dest: ReturnType<typeof pino.destination>;
    try {
      // Synchronous appends, as pino's stdout: a line is in the file (page cache) once its session
      // is gone, even if the process crashes next. (Asynchronous writes were tried: no cheaper per
      // line in scripts/metrics-cost.ts, and lines in flight are lost on a crash.)
      dest = pino.destination({ dest: file, sync: true, append: true, mkdir: true });
    } catch (err) {
      throw new AccessLogError(`Cannot open FPROXY_ACCESS_LOG "${file}" for app "${app}": ${(err as Error).message}`, { cause: err });
    }
    const fileLogger = pino({ level: 'info', base: { pid: process.pid, app, ...bindings }, timestamp: pino.stdTimeFunctions.isoTime }, dest);
    const reopen = (): void => {
      try {
        dest.reopen();
        logger.info({ file }, 'access log reopened');
      } catch (err) {
        logger.error({ file, err: (err as Error).message }, 'cannot reopen the access log file; lines go to the old one');
      }
    };
    const close = (): Promise<void> => {
      dest.end();
      return Promise.resolve();
    };
    return new AccessLog(fileLogger, reopen, close);
  }

  /** `app` comes from the logger's bindings (the listener's, or the file logger's base). */
  write(r: AccessRecord): void {
    this.#logger.info({
      event: 'access',
      // null, not absent: every line has every field, so log tools see one shape.
      client: r.client ?? null, sni: r.sni ?? null, alpn: r.alpn ?? null, target: r.target ?? null, endpoint: r.endpoint ?? null, attempts: r.attempts,
      outcome: r.outcome, code: r.code ?? null, bytesIn: r.bytesIn, bytesOut: r.bytesOut, connectMs: r.connectMs < 0 ? null : round3(r.connectMs), durationMs: round3(r.durationMs),
    }, 'access');
  }

  /** Open the file again by name (after logrotate moved it); a no-op without a file. */
  reopen(): void {
    this.#reopen();
  }

  /** Resolves once every line is written. */
  close(): Promise<void> {
    return this.#close();
  }
}

function round3(ms: number): number {
  return Math.round(ms * 1000) / 1000;
}
