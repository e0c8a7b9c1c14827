// NativeSession: one client connection that the native engine accepted, connects and forwards
// (plain TCP apps without PROXY header in or out, TLS or FirstByteTimeoutMs; see Listener). No
// net.Socket exists for it: the engine reports the accepted fd and client address, and this object
// runs the same policy as Session with plain values:
//   1. accept: the listener has checked drain, descriptors and admission (ACL, limits, leases)
//   2. route: the app's default pool (no SNI/ALPN without TLS); none → RST
//   3. connect: Connector.dialWith — the same pick, retry budget, backoff, queueing and pool reports
//      as the JS path — with each attempt made by the engine (`dial`); a failed attempt gives the
//      client fd back to us for the next one; no target → RST to the client
//   4. forward: the engine forwards from the moment it connected (idle timeout in C)
//   5. close: the engine's one close report (bytes, outcome) → finish(): target released, one
//      metrics update and access line through the listener
//
// State is a handful of plain fields and no closure, so an idle connection costs little JS memory.
// Who holds the client fd: us (`fd` ≥ 0) between attempts, the engine while it connects or forwards
// (`fd` −1). Exactly one close report or one finish() per connection: destroy() while the engine
// holds the fd asks it to close and waits for its report (or for the failed attempt's fd, which we
// then close ourselves).
import type { ConnectError, ConnectHandle, Connector, Dialed, DialJob, Dialer } from './connector.ts';
import { AttemptTimeoutError } from './connector.ts';
import type { ForwardResult } from './engine/engine.ts';
import type { ConnectionSink, ConnectOutcome, NativeEngine } from './engine/native-engine.ts';
import type { TargetPool } from './pool/target-pool.ts';
import type { TargetState } from './pool/target-state.ts';
import type { Router } from './router.ts';
import type { HandoverSession } from './ipc/protocol.ts';
import { ENGINE_CODES, NO_ALPN } from './session.ts';
import type { Failure, HandOff, Outcome } from './session.ts';
import { socketFromFd } from './engine/socket-from-fd.ts';
import type { ListenerSpec } from './spec.ts';

/** What a NativeSession uses of its listener. */
export interface NativeSessionHost {
  readonly spec: ListenerSpec;
  readonly router: Router;
  readonly connector: Connector;
  onConnectFailed(session: { readonly clientAddress: string | undefined }, err: ConnectError | null): void;
  onNativeClosed(session: NativeSession): void;
}

/** errno → code, for the pool's lastError and passive health (attemptResult reads `code`). */
const ERRNO_CODES: Record<number, string> = { 111: 'ECONNREFUSED', 110: 'ETIMEDOUT', 113: 'EHOSTUNREACH', 101: 'ENETUNREACH', 24: 'EMFILE', 23: 'ENFILE', 99: 'EADDRNOTAVAIL', 104: 'ECONNRESET' };

const WAITING = 0; // we hold the fd (admission, DNS, backoff)
const CONNECTING = 1; // the engine holds it and is connecting
const FORWARDING = 2;
const CLOSED = 3;

export class NativeSession implements Dialer, ConnectionSink {
  readonly host: NativeSessionHost;
  readonly engine: NativeEngine;
  readonly id: number;
  /** The accepted client socket: ours in WAITING, the engine's while it connects or forwards. */
  readonly fd: number;
  readonly clientAddress: string;
  readonly clientPort: number;
  readonly startedAt: number;
  readonly t0: number;
  readonly sni: undefined = undefined;
  readonly alpn: undefined = undefined;
  readonly handshakeMs = -1;
  connectMs = -1;
  target: string | undefined;
  endpoint: string | undefined;
  targetState: TargetState | null = null;
  attempts = 0;
  outcome: Outcome = 'ok';
  code: string | undefined;
  bytesIn = 0;
  bytesOut = 0;
  #pool: TargetPool | null = null;
  #job: ConnectHandle | null = null;
  #state = WAITING;
  /** destroy() came while the engine held the fd: the next report ends the session. */
  #closing = false;
  #closingReset = false;
  /** The attempt the engine is making: its job, and what a timeout error names. */
  #attemptJob: DialJob | null = null;
  #attemptMs = 0;
  #attemptTo = '';
  #finished = false;
  #detaching = false;
  /** The engine said half-closed: it stays here to its end. */
  #detachRefused = false;

  constructor(host: NativeSessionHost, engine: NativeEngine, fd: number, address: string, port: number) {
    this.host = host;
    this.engine = engine;
    this.id = engine.newId();
    this.fd = fd;
    this.clientAddress = address;
    this.clientPort = port;
    this.startedAt = Date.now();
    this.t0 = performance.now();
  }

  /** Connected and forwarding, no close asked for: the only state a handover could detach. */
  get forwarding(): boolean {
    return this.#state === FORWARDING && !this.#closing;
  }

  /**
   * Take this connection off the process at a clean point (issue 16 §2), as Session does for a pair
   * it handed to the engine: the engine detaches the pair (both sides open, out of its epoll set)
   * and gives back both fds and what it held in its buffers, which become paused sockets for the
   * adopting worker. Undefined: not now (not forwarding, a detach under way, or refused for good:
   * half-closed); the promise's undefined: refused (it keeps forwarding here, or is closing and
   * reports as usual). Once handed off the session ends here without a count or a close report.
   */
  handOff(): Promise<HandOff | undefined> | undefined {
    if (!this.forwarding || this.#detaching || this.#detachRefused || this.target === undefined) return undefined;
    this.#detaching = true;
    return this.engine.detachConnection(this.id).then((r) => {
      this.#detaching = false;
      if (!r.ok) {
        if (r.reason === 'half-closed') this.#detachRefused = true;
        return undefined;
      }
      const d = r.pair;
      const state = this.handoverState(d.bytesIn, d.bytesOut)!;
      this.#state = CLOSED;
      this.#finished = true;
      // Released on its target here; the adopting worker counts it on its own.
      if (this.targetState !== null && this.#pool !== null) this.#pool.release(this.targetState);
      this.#pool = null;
      return { client: socketFromFd(d.clientFd), upstream: socketFromFd(d.upstreamFd), state, fromClient: d.toUpstream, fromUpstream: d.toClient };
    });
  }

  /** What a handover to another process carries for this connection (HandoverSession without `pending`), given the engine's byte counts at the detach. */
  handoverState(bytesIn: number, bytesOut: number): Omit<HandoverSession, 'pending'> | undefined {
    if (!this.forwarding || this.target === undefined) return undefined;
    return {
      target: this.target,
      ...(this.endpoint === undefined ? {} : { endpoint: this.endpoint }),
      client: this.clientAddress,
      startedAt: this.startedAt,
      bytesIn,
      bytesOut,
      attempts: this.attempts,
      connectMs: this.connectMs,
      handshakeMs: this.handshakeMs,
    };
  }

  /** Admitted: route and connect. */
  start(): void {
    if (this.#state !== WAITING || this.#closing) return;
    const pool = this.host.router.pool(undefined, NO_ALPN);
    if (pool.size === 0) return this.refuse('no-route', 'ERR_NO_ROUTE');
    this.#pool = pool;
    const key = this.host.spec.strategy === 'source-hash' ? this.clientAddress : undefined;
    this.#job = this.host.connector.dialWith(pool, key, this.startedAt, this);
  }

  /** Not PROXY-protocol: never held after a header. Here for the admission's ticket. */
  admitted(): void {
    this.start();
  }

  /** Dialer: one attempt, made by the engine with the client fd. */
  dial(job: DialJob, address: string, port: number, timeoutMs: number): void {
    try {
      this.engine.connect(this.id, this.fd, address, port, timeoutMs, this.host.spec.idleTimeoutMs, null, this);
    } catch (err) {
      // Bad arguments or out of memory: the fd is still ours; this attempt failed.
      return job.dialed(Object.assign(new Error((err as Error).message), { code: 'ENOMEM' }));
    }
    this.#attemptJob = job;
    this.#attemptMs = timeoutMs;
    this.#attemptTo = address.includes(':') ? `[${address}]:${port}` : `${address}:${port}`;
    this.#state = CONNECTING;
  }

  /** ConnectionSink: the engine's answer to an attempt. */
  connectResult(result: ConnectOutcome, errno: number): void {
    const job = this.#attemptJob;
    if (result === 'connected') {
      this.#state = FORWARDING;
      if (this.#closing) return; // close(id) is on its way: its report ends the session
      this.#attemptJob = null;
      return job?.dialed(null);
    }
    // The client fd is ours again.
    this.#state = WAITING;
    if (this.#closing) return this.#closeHeld(this.#closingReset);
    this.#attemptJob = null;
    const code = ERRNO_CODES[errno] ?? `ERRNO_${errno}`;
    const err = result === 'timeout' ? new AttemptTimeoutError(this.#attemptTo, this.#attemptMs) : Object.assign(new Error(`connect ${code} ${this.#attemptTo}`), { code });
    job?.dialed(err);
  }

  /** Dialer: the connector's verdict. */
  done(err: ConnectError | null, res: Dialed | null): void {
    this.#job = null;
    if (err !== null || res === null) {
      this.attempts = err?.attempts ?? 0;
      this.target = err?.lastTarget;
      this.endpoint = err?.lastEndpoint;
      if (err?.code === 'ERR_TARGETS_FULL') return this.refuse('over-limit', 'ERR_TARGETS_FULL');
      this.host.onConnectFailed(this, err);
      return this.refuse('connect-failed', 'ERR_CONNECT_EXHAUSTED');
    }
    this.connectMs = performance.now() - this.t0;
    this.attempts = res.attempts;
    this.target = res.target.raw;
    this.targetState = res.state;
    this.endpoint = res.endpoint;
  }

  /** ConnectionSink: the pair closed (forwarded to its end, or closed while connecting). */
  closed(r: ForwardResult): void {
    this.#state = CLOSED;
    // Closed by the engine itself while connecting (its stop, a drain deadline): the job ends too.
    if (this.#job !== null) {
      this.#job.cancel();
      this.#job = null;
    }
    this.bytesIn = r.bytesIn;
    this.bytesOut = r.bytesOut;
    if (r.outcome !== 'ok') this.fail(r.outcome, ENGINE_CODES[r.outcome]);
    this.finish();
  }

  /** Refused before any upstream (ACL, limits, no route, no target): RST to the client. */
  refuse(outcome: Failure, code: string): void {
    this.fail(outcome, code);
    if (this.#state === WAITING) return this.#closeHeld(true);
    this.destroy(outcome, code, true);
  }

  /** Close now (drain deadline, max duration, OnTargetDown "close" with `reset`). */
  destroy(outcome: Failure, code: string, reset = false): void {
    if (this.#state === CLOSED || this.#closing) return;
    this.fail(outcome, code);
    if (this.#job !== null) {
      this.#job.cancel();
      this.#job = null;
    }
    if (this.#state === WAITING) return this.#closeHeld(reset);
    // The engine holds the fd: its close report (or a failed attempt's fd) ends the session.
    this.#closing = true;
    this.#closingReset = reset;
    this.engine.close(this.id, reset);
  }

  /** The first failure wins; 'ok' stays when none came. */
  fail(outcome: Failure, code: string): void {
    if (this.outcome !== 'ok') return;
    this.outcome = outcome;
    this.code = code;
  }

  /** Close the client fd we hold: RST for a refusal (as the JS path's resetAndDestroy), else FIN. */
  #closeHeld(reset: boolean): void {
    if (this.#job !== null) {
      this.#job.cancel();
      this.#job = null;
    }
    this.engine.closeFd(this.fd, reset);
    this.#state = CLOSED;
    this.finish();
  }

  finish(): void {
    if (this.#finished) return;
    this.#finished = true;
    this.#state = CLOSED;
    const state = this.targetState;
    if (state !== null && this.#pool !== null) this.#pool.release(state);
    this.#pool = null;
    this.host.onNativeClosed(this);
  }
}
