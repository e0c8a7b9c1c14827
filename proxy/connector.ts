// Connector: reaches one endpoint of a target pool for one client connection.
//
// Policy (HAProxy's `retries` + `option redispatch`, bounded by a time budget like Envoy's
// connect_timeout): the first attempt goes to the pool's next target (round-robin); each failed
// attempt (refused, unreachable, attempt timeout, DNS failure) moves on to the following target.
// After a full pass over the pool fails, wait a little (100 ms × pass) before the next pass, so a
// pool that refuses instantly is not hammered. Stop when the budget is spent or after
// max(3, 2 × pool size) attempts, whichever comes first: a dead pool answers fast.
//
// Invariants: every attempt settles exactly once (error, connect or timeout; first wins, the
// others are ignored and the losing socket destroyed); the callback fires exactly once unless
// cancel() came first; a warm DNS cache means no promise and no await on this path.
import net from 'node:net';
import type { DnsCache } from './dns-cache.ts';
import type { ListenerMetrics } from './metrics/listener-metrics.ts';
import type { RoundRobin } from './round-robin.ts';
import type { TargetSpec } from './spec.ts';

export class ConnectError extends Error {
  readonly code = 'ERR_CONNECT_EXHAUSTED';
  readonly app: string;
  readonly attempts: number;
  readonly lastTarget: string | undefined;
  readonly lastEndpoint: string | undefined;
  constructor(app: string, attempts: number, elapsedMs: number, lastTarget: string | undefined, lastEndpoint: string | undefined, cause: unknown) {
    const why = cause instanceof Error ? ((cause as NodeJS.ErrnoException).code ?? cause.message) : 'no targets';
    const where = lastTarget ? ` last target "${lastTarget}"${lastEndpoint ? ` (${lastEndpoint})` : ''}: ${why}` : `: ${why}`;
    super(`Cannot connect app "${app}" to any target after ${attempts} attempt(s) in ${elapsedMs} ms;${where}`, { cause });
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
  /** "ip:port" that answered. */
  readonly endpoint: string;
  readonly attempts: number;
}

export type ConnectCallback = (err: ConnectError | null, result: ConnectResult | null) => void;

export interface ConnectorOptions {
  readonly app: string;
  readonly dns: DnsCache;
  readonly budgetMs: number;
  readonly attemptTimeoutMs: number;
  /** Counts every settled attempt by target and result (fproxy_connect_attempts_total). */
  readonly metrics?: Pick<ListenerMetrics, 'attempt'>;
}

const kJob = Symbol('connectJob');
type JobSocket = net.Socket & { [kJob]?: ConnectJob };

/** One in-flight connect for one client; create through Connector.connect. */
class ConnectJob {
  readonly #opts: ConnectorOptions;
  readonly #pool: RoundRobin<TargetSpec>;
  readonly #cb: ConnectCallback;
  readonly #deadline: number;
  readonly #startedAt: number;
  readonly #maxAttempts: number;
  #index: number;
  #attempts = 0;
  #socket: JobSocket | null = null;
  #timer: NodeJS.Timeout | null = null;
  #target: TargetSpec | undefined;
  #endpoint: string | undefined;
  #lastError: unknown = undefined;
  #done = false;

  constructor(opts: ConnectorOptions, pool: RoundRobin<TargetSpec>, startedAt: number, cb: ConnectCallback) {
    this.#opts = opts;
    this.#pool = pool;
    this.#cb = cb;
    this.#startedAt = startedAt;
    this.#deadline = startedAt + opts.budgetMs;
    this.#maxAttempts = Math.max(3, 2 * pool.size);
    this.#index = pool.nextIndex();
  }

  start(): void {
    if (this.#index < 0) return this.#fail();
    this.#attempt();
  }

  cancel(): void {
    if (this.#done) return;
    this.#done = true;
    this.#clearAttempt(true);
  }

  #attempt(): void {
    if (this.#done) return;
    const remaining = this.#deadline - Date.now();
    if (remaining <= 0 || this.#attempts >= this.#maxAttempts) return this.#fail();
    const target = this.#pool.items[this.#index]!;
    this.#target = target;
    this.#attempts++;
    const address = this.#opts.dns.pick(target.host);
    if (address === undefined) {
      // Cold cache: the only asynchronous step, taken once per TTL window per name.
      this.#endpoint = undefined;
      this.#opts.dns.resolve(target.host).then(
        () => { if (!this.#done) { this.#attempts--; this.#attemptResolved(target); } },
        (err: unknown) => this.#attemptFailed(err),
      );
      return;
    }
    this.#dial(target, address, remaining);
  }

  #attemptResolved(target: TargetSpec): void {
    const remaining = this.#deadline - Date.now();
    const address = this.#opts.dns.pick(target.host);
    this.#attempts++;
    if (remaining <= 0 || address === undefined) return this.#attemptFailed(Object.assign(new Error(`no address for ${target.host}`), { code: 'ERR_DNS_NO_ADDRESS' }));
    this.#dial(target, address, remaining);
  }

  #dial(target: TargetSpec, address: string, remaining: number): void {
    const v6 = address.includes(':');
    this.#endpoint = v6 ? `[${address}]:${target.port}` : `${address}:${target.port}`;
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
      this.#opts.metrics?.attempt(this.#target!.raw, null);
      this.#clearAttempt(false);
      socket.setKeepAlive(true, 60_000);
      this.#cb(null, { socket, target: this.#target!, endpoint: this.#endpoint!, attempts: this.#attempts });
      return;
    }
    this.#clearAttempt(true);
    this.#attemptFailed(err);
  }

  #attemptFailed(err: unknown): void {
    if (this.#done) return;
    this.#opts.metrics?.attempt(this.#target!.raw, err);
    this.#lastError = err;
    const n = this.#pool.size;
    this.#index = this.#index + 1 === n ? 0 : this.#index + 1;
    if (this.#attempts % n === 0) {
      // A full pass failed: back off before the next one, within the budget.
      const wait = Math.min(100 * (this.#attempts / n), this.#deadline - Date.now());
      if (wait <= 0 || this.#attempts >= this.#maxAttempts) return this.#fail();
      this.#timer = setTimeout(onBackoffDone, wait, this);
      return;
    }
    this.#attempt();
  }

  /** @internal */
  resume(): void {
    this.#timer = null;
    this.#attempt();
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

  #fail(): void {
    if (this.#done) return;
    this.#done = true;
    this.#clearAttempt(true);
    const err = new ConnectError(this.#opts.app, this.#attempts, Date.now() - this.#startedAt, this.#target?.raw, this.#endpoint, this.#lastError);
    this.#cb(err, null);
  }

  /** @internal */
  timeout(ms: number): void {
    const s = this.#socket;
    if (s === null) return;
    this.#timer = null;
    this.settle(s, new AttemptTimeoutError(this.#endpoint ?? '?', ms));
  }
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
function ignore(): void {}

export interface ConnectHandle {
  cancel(): void;
}

export class Connector {
  readonly #opts: ConnectorOptions;

  constructor(opts: ConnectorOptions) {
    this.#opts = opts;
  }

  /** Connect to some target of `pool`; `cb` fires once with the upstream socket or a ConnectError. */
  connect(pool: RoundRobin<TargetSpec>, startedAt: number, cb: ConnectCallback): ConnectHandle {
    const job = new ConnectJob(this.#opts, pool, startedAt, cb);
    job.start();
    return job;
  }
}
