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

/** Fd 1 only: bytes that may wait in process.stdout for a slow reader before lines are dropped. */
const BACKLOG_LIMIT = 1024 * 1024;
/** Other fds (tests): how long one line may wait for a full descriptor before it is dropped. */
const STALL_LIMIT_MS = 1000;
const sleeper = new Int32Array(new SharedArrayBuffer(4));
/** Over every StdoutLines of this process: a listener replaces its logger at start, and the count must not restart with it. */
let droppedInProcess = 0;
/** Lines wait in process.stdout (the reader is behind) until it has written them all; shared by every writer. */
let backlogged = false;
/** process.stdout failed (EPIPE: the reader is gone): every line from then on is dropped. */
let stdoutBroken = false;
let stdoutWatched = false;

/** Log lines this process has dropped so far (what the daemon shows as fproxy_log_lines_dropped_total). */
export function logLinesDropped(): number {
  return droppedInProcess;
}

/**
 * Log lines to fd 1 that never block the process. pino's default (sonic-boom, sync) sleeps 100 ms
 * and retries while stdout is full, with no end, and once the reader has gone it retries EPIPE
 * the same way: a listener whose daemon was killed, with a full or broken stdout, stayed in that
 * loop for good, its event loop (and, with the inline engine, its forwarding) stopped, holding
 * its port, deaf to SIGTERM. Here a line is written at once (writeSync) while stdout keeps up;
 * when it is full (EAGAIN), the line and those after it wait in process.stdout, which libuv writes
 * as the reader takes them, in order, without blocking anything; past BACKLOG_LIMIT bytes waiting,
 * lines are dropped until it catches up. A broken stdout (EPIPE or any other error) drops
 * everything after. Drops are counted here (`dropped`) and for the process (logLinesDropped()),
 * never logged: the log is what is failing. Lines still waiting when the process exits are lost.
 */
export class StdoutLines {
  #stalled = false;
  #broken = false;
  dropped = 0;
  readonly #fd: number;
  constructor(fd = 1) {
    this.#fd = fd;
    if (fd !== 1 || stdoutWatched) return;
    stdoutWatched = true;
    // Opening process.stdout also makes a pipe on fd 1 non-blocking (libuv): as the parent made
    // it, blocking, a write to a full pipe would wait for its reader for good.
    process.stdout.on('error', () => (stdoutBroken = true));
  }

  write(line: string): boolean {
    if (this.#fd !== 1) return this.#writeWaiting(line);
    if (stdoutBroken) return this.#drop();
    if (backlogged) return this.#queue(line);
    const buf = Buffer.from(line);
    try {
      const n = writeSync(1, buf);
      return n >= buf.length ? true : this.#queue(buf.subarray(n), true);
    } catch (err) {
      const code = (err as NodeJS.ErrnoException).code;
      if (code === 'EAGAIN' || code === 'EBUSY') return this.#queue(buf);
      stdoutBroken = true;
      return this.#drop();
    }
  }

  /** Behind the reader: the line waits in process.stdout (`rest`: the tail of a line begun, never dropped). */
  #queue(chunk: string | Buffer, rest = false): boolean {
    const out = process.stdout;
    if (!rest && out.writableLength + chunk.length > BACKLOG_LIMIT) return this.#drop();
    backlogged = true;
    out.write(chunk, (err) => {
      if (err) stdoutBroken = true;
      else if (out.writableLength === 0) backlogged = false;
    });
    return true;
  }

  /** Any other fd: a full one is waited for up to STALL_LIMIT_MS per line, then lines are dropped until one goes through. */
  #writeWaiting(line: string): boolean {
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
