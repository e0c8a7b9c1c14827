// Connector: reaches one endpoint of a target pool for one client connection.
//
// Policy (HAProxy's `retries` + `option redispatch`, bounded by a time budget like Envoy's
// connect_timeout): every attempt asks the pool for a target (pool.pick: strategy, health, backup,
// and the targets this job already tried, which it avoids while it can) and reports how the attempt
// ended (pool.report: ok, refused, unreachable, timeout, dns), so passive health learns from every
// attempt. After each full pass's worth of attempts (pool size) fails, wait a little (100 ms ×
// pass) before the next pass, so a pool that refuses instantly is not hammered. Stop when the
// budget is spent or after max(3, 2 × pool size) attempts, whichever comes first: a dead pool
// answers fast. Within one target, DnsCache rotates over its endpoints.
//
// When the pool answers FULL (every target it may use is at its MaxConnections), the job waits in
// the pool's queue up to queueTimeoutMs for a slot (the wait does not count against the connect
// budget), else fails at once with ERR_TARGETS_FULL. Pools without such limits never answer FULL.
//
// Invariants: every attempt settles exactly once (error, connect or timeout; first wins, the
// others are ignored and the losing socket destroyed) and is reported to the pool exactly once
// (a cancelled attempt is released, not reported); the callback fires exactly once unless
// cancel() came first; a warm DNS cache means no promise and no await on this path.
import net from 'node:net';
import type { DnsCache } from './dns-cache.ts';
import type { ListenerMetrics } from './metrics/listener-metrics.ts';
import { FULL, type SlotWaiter, type TargetPool } from './pool/target-pool.ts';
import type { AttemptResult, TargetState } from './pool/target-state.ts';
import type { TargetSpec } from './spec.ts';

export class ConnectError extends Error {
  /** ERR_TARGETS_FULL: every target was at its MaxConnections (after queueing, if configured). */
  readonly code: 'ERR_CONNECT_EXHAUSTED' | 'ERR_TARGETS_FULL';
  readonly app: string;
  readonly attempts: number;
  readonly lastTarget: string | undefined;
  readonly lastEndpoint: string | undefined;
  constructor(app: string, attempts: number, elapsedMs: number, lastTarget: string | undefined, lastEndpoint: string | undefined, cause: unknown, full = false) {
    if (full) {
      super(`Every target of app "${app}" is at its MaxConnections after ${elapsedMs} ms (${attempts} attempt(s)); raise MaxConnections or QueueTimeoutMs`);
      this.code = 'ERR_TARGETS_FULL';
      this.app = app;
      this.attempts = attempts;
      this.lastTarget = lastTarget;
      this.lastEndpoint = lastEndpoint;
      return;
    }
    const why = cause instanceof Error ? ((cause as NodeJS.ErrnoException).code ?? cause.message) : 'no targets';
    const where = lastTarget ? ` last target "${lastTarget}"${lastEndpoint ? ` (${lastEndpoint})` : ''}: ${why}` : `: ${why}`;
    super(`Cannot connect app "${app}" to any target after ${attempts} attempt(s) in ${elapsedMs} ms;${where}`, { cause });
    this.code = 'ERR_CONNECT_EXHAUSTED';
    this.app = app;
    this.attempts = attempts;
    this.lastTarget = lastTarget;
    this.lastEndpoint = lastEndpoint;
  }
}

export class AttemptTimeoutError extends Error {
  readonly code = 'ETIMEDOUT';
  constructor(endpoint: string, ms: number) {
    super(`connect to ${endpoint} timed out after ${ms} ms`);
  }
}

export interface ConnectResult {
  readonly socket: net.Socket;
  readonly target: TargetSpec;
  /** The target's state in the pool; the caller releases it (pool.release) when the session ends. */
  readonly state: TargetState;
  /** "ip:port" that answered. */
  readonly endpoint: string;
  readonly attempts: number;
}

export type ConnectCallback = (err: ConnectError | null, result: ConnectResult | null) => void;

/** A connect that another party made (the native engine): everything but the socket. */
export type Dialed = Omit<ConnectResult, 'socket'>;

/**
 * Makes attempts outside Node (the native engine connects in C). The job says where and for how
 * long; the dialer answers once per attempt with job.dialed(). The attempt's time limit is the
 * dialer's to enforce (it answers with an AttemptTimeoutError).
 */
export interface Dialer {
  dial(job: DialJob, address: string, port: number, timeoutMs: number): void;
  /** The job's verdict: connected (`err` null: the dialer forwards from here), or no target reached. */
  done(err: ConnectError | null, result: Dialed | null): void;
}

export interface DialJob {
  /** The attempt's answer: null = connected; else its error (code ECONNREFUSED …, or AttemptTimeoutError). */
  dialed(err: Error | null): void;
}

export interface ConnectorOptions {
  readonly app: string;
  readonly dns: DnsCache;
  readonly budgetMs: number;
  readonly attemptTimeoutMs: number;
  /** Counts every settled attempt by target and result (fproxy_connect_attempts_total). */
  readonly metrics?: Pick<ListenerMetrics, 'attemptAs'>;
  /** All targets full: wait this long for a slot. 0 (default) = fail at once with ERR_TARGETS_FULL. */
  readonly queueTimeoutMs?: number;
}

const kJob = Symbol('connectJob');
type JobSocket = net.Socket & { [kJob]?: ConnectJob };

/** One in-flight connect for one client; create through Connector.connect. */
class ConnectJob implements SlotWaiter, DialJob {
  readonly #opts: ConnectorOptions;
  readonly #pool: TargetPool;
  readonly #key: string | undefined;
  readonly #cb: ConnectCallback | null;
  /** Set: attempts go through it (native engine), not net.connect; #dialing while one is out. */
  readonly #dialer: Dialer | null;
  #dialing = false;
  /** Moves later by the time spent queued for a slot. */
  #deadline: number;
  /** performance.now() when the job started waiting for a slot; -1 = not waiting. */
  #queuedAt = -1;
  readonly #startedAt: number;
  readonly #maxAttempts: number;
  #attempts = 0;
  /** Entries of the pool tried by this job; allocated on the first failure (the rare path). */
  #tried: Uint8Array | null = null;
  #entry = -1;
  /** The current attempt's target, counted by pool.pick() until reported or released. */
  #state: TargetState | null = null;
  #socket: JobSocket | null = null;
  #timer: NodeJS.Timeout | null = null;
  #target: TargetSpec | undefined;
  #endpoint: string | undefined;
  #lastError: unknown = undefined;
  /** The backoff in progress runs to the end of the budget (see #attemptFailed). */
  #lastWait = false;
  #done = false;

  constructor(opts: ConnectorOptions, pool: TargetPool, key: string | undefined, startedAt: number, cb: ConnectCallback | null, dialer: Dialer | null = null) {
    this.#opts = opts;
    this.#pool = pool;
    this.#key = key;
    this.#cb = cb;
    this.#dialer = dialer;
    this.#startedAt = startedAt;
    this.#deadline = startedAt + opts.budgetMs;
    this.#maxAttempts = Math.max(3, 2 * pool.size);
  }

  start(): void {
    if (this.#pool.size === 0) return this.#fail();
    this.#attempt();
  }

  cancel(): void {
    if (this.#done) return;
    this.#done = true;
    this.#unqueue();
    this.#clearAttempt(true);
    this.#release();
  }

  #attempt(): void {
    if (this.#done) return;
    const remaining = this.#deadline - Date.now();
    if (remaining <= 0 || this.#attempts >= this.#maxAttempts) return this.#fail();
    const i = this.#pool.pick(this.#key, this.#tried);
    if (i === FULL) return this.#full();
    this.#attemptAt(i, remaining);
  }

  /** Every target is at its MaxConnections: queue for a slot, or fail. */
  #full(): void {
    const ms = this.#opts.queueTimeoutMs ?? 0;
    if (ms <= 0) return this.#fail(true);
    this.#queuedAt = performance.now();
    this.#pool.waitForSlot(this);
    this.#timer = setTimeout(onQueueTimeout, ms, this);
  }

  /** @internal SlotWaiter: called by the pool's table, in order of waiting. */
  slotFreed(): boolean {
    if (this.#done) return true;
    const i = this.#pool.pick(this.#key, this.#tried);
    if (i === FULL) return false;
    // The table drops us from its queue on `true`: don't cancel the wait here.
    this.#dequeued();
    this.#attemptAt(i, this.#deadline - Date.now());
    return true;
  }

  /** @internal */
  queueTimedOut(): void {
    this.#timer = null;
    this.#pool.cancelWait(this);
    this.#queuedAt = -1;
    this.#fail(true);
  }

  #dequeued(): void {
    if (this.#timer !== null) {
      clearTimeout(this.#timer);
      this.#timer = null;
    }
    this.#deadline += Math.round(performance.now() - this.#queuedAt);
    this.#queuedAt = -1;
  }

  #unqueue(): void {
    if (this.#queuedAt < 0) return;
    this.#pool.cancelWait(this);
    this.#queuedAt = -1;
  }

  #attemptAt(i: number, remaining: number): void {
    const pool = this.#pool;
    const state = pool.entries[i]!.state;
    this.#entry = i;
    this.#state = state;
    const target = state.spec;
    this.#target = target;
    this.#attempts++;
    const address = this.#opts.dns.pick(target.host);
    if (address === undefined) {
      // Cold cache: the only asynchronous step, taken once per TTL window per name.
      this.#endpoint = undefined;
      this.#opts.dns.resolve(target.host).then(
        () => this.#attemptResolved(target),
        (err: unknown) => { if (!this.#done) this.#attemptFailed(err, 'dns'); },
      );
      return;
    }
    this.#dial(target, address, remaining);
  }

  #attemptResolved(target: TargetSpec): void {
    if (this.#done) return;
    const remaining = this.#deadline - Date.now();
    if (remaining <= 0) {
      // The budget ran out while resolving: not the target's fault.
      this.#release();
      return this.#fail();
    }
    const address = this.#opts.dns.pick(target.host);
    if (address === undefined) return this.#attemptFailed(new Error(`no address for ${target.host}`), 'dns');
    this.#dial(target, address, remaining);
  }

  #dial(target: TargetSpec, address: string, remaining: number): void {
    const v6 = address.includes(':');
    this.#endpoint = v6 ? `[${address}]:${target.port}` : `${address}:${target.port}`;
    if (this.#dialer !== null) {
      this.#dialing = true;
      return this.#dialer.dial(this, address, target.port, Math.min(this.#opts.attemptTimeoutMs, remaining));
    }
    const socket: JobSocket = net.connect({ host: address, port: target.port, allowHalfOpen: true, noDelay: true });
    socket[kJob] = this;
    socket.once('connect', onSocketConnect);
    socket.once('error', onSocketError);
    this.#socket = socket;
    const ms = Math.min(this.#opts.attemptTimeoutMs, remaining);
    this.#timer = setTimeout(onAttemptTimeout, ms, this, ms);
  }

  /** @internal from the module-level handlers. */
  settle(socket: JobSocket, err: unknown): void {
    if (this.#done || socket !== this.#socket) return;
    if (err === null) {
      this.#done = true;
      this.#clearAttempt(false);
      const state = this.#state!;
      this.#state = null;
      this.#pool.report(state, this.#endpoint, 'ok');
      this.#opts.metrics?.attemptAs(state.raw, 'ok');
      socket.setKeepAlive(true, 60_000);
      this.#cb!(null, { socket, target: this.#target!, state, endpoint: this.#endpoint!, attempts: this.#attempts });
      return;
    }
    this.#clearAttempt(true);
    this.#attemptFailed(err, attemptResult(err));
  }

  /** DialJob: the dialer's answer to the attempt in progress (ignored once the job is over). */
  dialed(err: Error | null): void {
    if (this.#done || !this.#dialing) return;
    this.#dialing = false;
    if (err !== null) return this.#attemptFailed(err, attemptResult(err));
    this.#done = true;
    const state = this.#state!;
    this.#state = null;
    this.#pool.report(state, this.#endpoint, 'ok');
    this.#opts.metrics?.attemptAs(state.raw, 'ok');
    this.#dialer!.done(null, { target: this.#target!, state, endpoint: this.#endpoint!, attempts: this.#attempts });
  }

  #attemptFailed(err: unknown, result: AttemptResult): void {
    if (this.#done) return;
    this.#opts.metrics?.attemptAs(this.#target!.raw, result);
    this.#lastError = err;
    const state = this.#state;
    if (state !== null) {
      this.#state = null;
      this.#pool.report(state, this.#endpoint, result, errorCode(err));
    }
    const n = this.#pool.size;
    this.#tried ??= new Uint8Array(n);
    this.#tried[this.#entry] = 1;
    if (this.#attempts % n === 0) {
      // A full pass failed: the next pass may try every target again, once each. Back off before
      // it, within the budget.
      this.#tried.fill(0);
      const backoff = 100 * (this.#attempts / n);
      const left = this.#deadline - Date.now();
      if (left <= 0 || this.#attempts >= this.#maxAttempts) return this.#fail();
      // A wait that runs to the end of the budget ends the job when it ends: a timer may fire a
      // millisecond before Date.now() says the budget is gone, and must not start another attempt.
      this.#lastWait = backoff >= left;
      this.#timer = setTimeout(onBackoffDone, Math.min(backoff, left), this);
      return;
    }
    this.#attempt();
  }

  /** @internal */
  resume(): void {
    this.#timer = null;
    if (this.#lastWait) return this.#fail();
    this.#attempt();
  }

  /** The attempt in progress ends without a verdict on its target (cancelled, budget gone). */
  #release(): void {
    const state = this.#state;
    if (state === null) return;
    this.#state = null;
    this.#pool.release(state);
  }

  #clearAttempt(destroySocket: boolean): void {
    if (this.#timer !== null) {
      clearTimeout(this.#timer);
      this.#timer = null;
    }
    const s = this.#socket;
    if (s !== null) {
      s.removeListener('connect', onSocketConnect);
      s.removeListener('error', onSocketError);
      s[kJob] = undefined;
      if (destroySocket) {
        s.on('error', ignore); // a late error on a socket we gave up on is not news
        s.destroy();
      }
      this.#socket = null;
    }
  }

  #fail(full = false): void {
    if (this.#done) return;
    this.#done = true;
    this.#clearAttempt(true);
    this.#release();
    const err = new ConnectError(this.#opts.app, this.#attempts, Date.now() - this.#startedAt, this.#target?.raw, this.#endpoint, this.#lastError, full);
    if (this.#dialer !== null) this.#dialer.done(err, null);
    else this.#cb!(err, null);
  }

  /** @internal */
  timeout(ms: number): void {
    const s = this.#socket;
    if (s === null) return;
    this.#timer = null;
    this.settle(s, new AttemptTimeoutError(this.#endpoint ?? '?', ms));
  }
}

/** Which kind of failure an attempt's error is, for passive health. */
export function attemptResult(err: unknown): AttemptResult {
  if (err instanceof AttemptTimeoutError) return 'timeout';
  const code = (err as { code?: unknown } | null)?.code;
  if (code === 'ECONNREFUSED') return 'refused';
  if (code === 'ERR_DNS_NOT_FOUND' || code === 'ERR_DNS_FAILED') return 'dns';
  return 'unreachable';
}

function errorCode(err: unknown): string {
  if (err instanceof Error) return (err as NodeJS.ErrnoException).code ?? err.message;
  return String(err);
}

function onSocketConnect(this: JobSocket): void {
  this[kJob]?.settle(this, null);
}
function onSocketError(this: JobSocket, err: Error): void {
  this[kJob]?.settle(this, err);
}
function onAttemptTimeout(job: ConnectJob, ms: number): void {
  job.timeout(ms);
}
function onBackoffDone(job: ConnectJob): void {
  job.resume();
}
function onQueueTimeout(job: ConnectJob): void {
  job.queueTimedOut();
}
function ignore(): void {}

export interface ConnectHandle {
  cancel(): void;
}

export class Connector {
  readonly #opts: ConnectorOptions;

  constructor(opts: ConnectorOptions) {
    this.#opts = opts;
  }

  /**
   * Connect to some target of `pool` for a client (`key`: its address, for source-hash; else
   * undefined); `cb` fires once with the upstream socket or a ConnectError.
   */
  connect(pool: TargetPool, key: string | undefined, startedAt: number, cb: ConnectCallback): ConnectHandle {
    const job = new ConnectJob(this.#opts, pool, key, startedAt, cb);
    job.start();
    return job;
  }

  /**
   * As connect(), with the attempts made by `dialer` (the native engine) instead of net.connect:
   * the same pick, retries, budget, backoff, queueing and reports; the verdict goes to dialer.done().
   */
  dialWith(pool: TargetPool, key: string | undefined, startedAt: number, dialer: Dialer): ConnectHandle {
    const job = new ConnectJob(this.#opts, pool, key, startedAt, null, dialer);
    job.start();
    return job;
  }
}
