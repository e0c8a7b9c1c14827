// One pino logger per process, bound to {proc, app, gen}. Logs are NDJSON on stdout; pretty-printing
// is a terminal concern done outside the hot processes (with pino 10, a pino-pretty transport runs a
// worker thread and adds ~17 MB RSS to each process that has one).
import { writeSync } from 'node:fs';
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
  return pino(options, destination ?? new StdoutLines());
}

/** How long one line may wait for a full stdout before it is dropped. */
const STALL_LIMIT_MS = 1000;
const sleeper = new Int32Array(new SharedArrayBuffer(4));
/** Over every StdoutLines of this process: a listener replaces its logger at start, and the count must not restart with it. */
let droppedInProcess = 0;

/** Log lines this process has dropped so far (what the daemon shows as fproxy_log_lines_dropped_total). */
export function logLinesDropped(): number {
  return droppedInProcess;
}

/**
 * Log lines to fd 1, written at once, that can never hang the process. pino's default (sonic-boom,
 * sync) sleeps 100 ms and retries while stdout is full, with no end, and once the reader has gone
 * it retries EPIPE the same way: a listener whose daemon was killed, with a full or broken stdout,
 * stayed in that loop for good, its event loop (and, with the inline engine, its forwarding)
 * stopped, holding its port, deaf to SIGTERM. Here a full stdout is waited for up to
 * STALL_LIMIT_MS per line (a slow reader still gets every line), then lines are dropped, tried
 * once each without waiting, until one goes through; a broken one (EPIPE or any other error)
 * drops everything after. Lines are written whole when they fit a pipe's atomic size (4 KiB).
 * Drops are counted here (`dropped`) and for the process (logLinesDropped()), never logged: the
 * log is what is failing.
 */
export class StdoutLines {
  #stalled = false;
  #broken = false;
  dropped = 0;
  readonly #fd: number;
  constructor(fd = 1) {
    this.#fd = fd;
    // A pipe fd 1 is blocking as the parent made it until Node opens process.stdout, which makes a
    // pipe non-blocking (libuv); a write to a full blocking pipe would wait for its reader for good,
    // whatever the limit below. (A file or a terminal stays as it is: neither waits for a reader.)
    if (fd === 1) void process.stdout.fd;
  }

  write(line: string): boolean {
    if (this.#broken) return this.#drop();
    let buf = Buffer.from(line);
    const deadline = Date.now() + (this.#stalled ? 0 : STALL_LIMIT_MS);
    for (;;) {
      try {
        const n = writeSync(this.#fd, buf);
        this.#stalled = false;
        if (n >= buf.length) return true;
        buf = buf.subarray(n);
      } catch (err) {
        const code = (err as NodeJS.ErrnoException).code;
        if (code !== 'EAGAIN' && code !== 'EBUSY') {
          this.#broken = true;
          return this.#drop();
        }
        if (Date.now() >= deadline) {
          this.#stalled = true;
          return this.#drop();
        }
        Atomics.wait(sleeper, 0, 0, 10);
      }
    }
  }

  #drop(): boolean {
    this.dropped++;
    droppedInProcess++;
    return true;
  }
}
