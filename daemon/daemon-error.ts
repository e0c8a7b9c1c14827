// DaemonError: the one error type the daemon throws or records. `code` is stable (tests and
// operators match on it); the context fields say which app, generation, worker or port it is
// about, and `cause` keeps the underlying error (an IPC error, a spawn error, a ConfigError).

export interface DaemonErrorContext {
  readonly app?: string;
  readonly generation?: number;
  readonly worker?: number;
  readonly pid?: number;
  readonly port?: number;
  readonly cause?: unknown;
}

export class DaemonError extends Error {
  readonly code: string;
  readonly app: string | undefined;
  readonly generation: number | undefined;
  readonly worker: number | undefined;
  readonly pid: number | undefined;
  readonly port: number | undefined;

  constructor(code: string, message: string, context: DaemonErrorContext = {}) {
    super(message, context.cause === undefined ? undefined : { cause: context.cause });
    this.name = 'DaemonError';
    this.code = code;
    this.app = context.app;
    this.generation = context.generation;
    this.worker = context.worker;
    this.pid = context.pid;
    this.port = context.port;
  }
}

/** What status shows for an error: plain JSON, stable code first. */
export interface ErrorSummary {
  readonly code: string;
  readonly message: string;
  readonly at: string;
}

export function summarizeError(err: unknown, at = new Date()): ErrorSummary {
  const e = err as { code?: unknown; message?: unknown };
  const code = typeof e?.code === 'string' ? e.code : 'ERR_UNKNOWN';
  const message = typeof e?.message === 'string' ? e.message : String(err);
  return { code, message, at: at.toISOString() };
}
