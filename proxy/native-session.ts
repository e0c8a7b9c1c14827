// NativeSession: one client connection that the native engine accepted, connects and forwards
// (every app but TLS termination, which needs Node's TLS socket; see Listener). No net.Socket
// exists for it: the engine reports the accepted fd and client address, and this object runs the
// same policy as Session with plain values:
//   1. accept: the listener has checked drain, descriptors and admission (ACL, limits, leases;
//      PROXY apps: after the header, on the real client)
//   2. inspect (PROXY header in, TLS passthrough), within HandshakeTimeoutMs: the engine watches
//      the fd (waitReadable); we read it (recv) and feed the same Inspector as Session; the bytes
//      after the header (passthrough: the ClientHello too) go upstream first. FirstByteTimeoutMs
//      (plain TCP): the same wait, then connect (no read), or close a client silent till then
//   3. route: the SNI/ALPN route or the app's default pool; none → RST
//   4. connect: Connector.dialWith — the same pick, retry budget, backoff, queueing and pool reports
//      as the JS path — with each attempt made by the engine (`dial`); a failed attempt gives the
//      client fd back to us for the next one; no target → RST to the client
//   5. forward: the engine forwards from the moment it connected (PROXY header out and the
//      inspected bytes first; idle timeout in C)
//   6. close: the engine's one close report (bytes, outcome) → finish(): target released, one
//      metrics update and access line through the listener
//
// State is a handful of plain fields and no closure, so an idle connection costs little JS memory.
// Who holds the client fd: us between attempts and reads, the engine while it watches, connects or
// forwards. Exactly one close report or one finish() per connection: destroy() while the engine
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
import { DONE, EMPTY, FAILED, HEADER, Inspector, MORE } from './inspect.ts';
import { buildProxyHeaderV1, buildProxyHeaderV2 } from './proxy-protocol.ts';
import { socketFromFd } from './engine/socket-from-fd.ts';
import type { ListenerSpec } from './spec.ts';

/** What a NativeSession uses of its listener. */
export interface NativeSessionHost {
  readonly spec: ListenerSpec;
  readonly router: Router;
  readonly connector: Connector;
  /** PROXY apps: protection on the real client, once the header is read (see Listener#admit). */
  readonly admit: ((session: NativeSession) => boolean) | undefined;
  onConnectFailed(session: { readonly clientAddress: string | undefined }, err: ConnectError | null): void;
  onNativeClosed(session: NativeSession): void;
}

/** errno → code, for the pool's lastError and passive health (attemptResult reads `code`). */
const ERRNO_CODES: Record<number, string> = { 111: 'ECONNREFUSED', 110: 'ETIMEDOUT', 113: 'EHOSTUNREACH', 101: 'ENETUNREACH', 24: 'EMFILE', 23: 'ENFILE', 99: 'EADDRNOTAVAIL', 104: 'ECONNRESET' };

const WAITING = 0; // we hold the fd (admission, reading, DNS, backoff)
const CONNECTING = 1; // the engine holds it and is connecting
const FORWARDING = 2;
const CLOSED = 3;
const READING = 4; // the engine holds it and watches it for the first bytes
const EAGAIN = 11;
/** Where first bytes are read; a chunk is copied out before anything else runs (one thread). */
const scratch = Buffer.allocUnsafe(16 * 1024);

export class NativeSession implements Dialer, ConnectionSink {
  readonly host: NativeSessionHost;
  readonly engine: NativeEngine;
  readonly id: number;
  /** The accepted client socket: ours in WAITING, the engine's while it connects or forwards. */
  readonly fd: number;
  /** As accepted, or as a PROXY header says. */
  clientAddress: string;
  clientPort: number;
  readonly startedAt: number;
  readonly t0: number;
  sni: string | undefined;
  /** Passthrough: not known (the target negotiates); no termination here. */
  readonly alpn: undefined = undefined;
  /** ms from accept to the ClientHello read (TLS passthrough); -1 = none. */
  handshakeMs = -1;
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
  /** Step 2, while reading the first bytes (null before and after). */
  #inspector: Inspector | null = null;
  #inspected = false;
  /** FirstByteTimeoutMs: the engine watches for the client's first byte before we connect. */
  #firstByte = false;
  /** Held for admission after its PROXY header: HandshakeTimeoutMs still runs (as Session's timer). */
  #holdTimer: NodeJS.Timeout | null = null;
  /** A PROXY header's destination (where the client connected), for the header we send on. */
  #destAddress: string | undefined;
  #destPort: number | undefined;
  /** What goes upstream before the client's next bytes: PROXY header out, then the inspected bytes. */
  #preUp: Buffer | null = null;
  /** Bytes read from the client while inspecting (the engine counts from the connect on). */
  #readBefore = 0;

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
      const state = this.handoverState(this.#readBefore + d.bytesIn, d.bytesOut)!;
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
      ...(this.sni === undefined ? {} : { sni: this.sni }),
      startedAt: this.startedAt,
      bytesIn,
      bytesOut,
      attempts: this.attempts,
      connectMs: this.connectMs,
      handshakeMs: this.handshakeMs,
    };
  }

  /** Accepted (and, without a PROXY header, admitted): inspect, or route and connect. */
  start(): void {
    if (this.#state !== WAITING || this.#closing || this.#inspector !== null) return;
    const spec = this.host.spec;
    if (!this.#inspected && (spec.acceptProxyProtocol || spec.tls !== undefined)) {
      this.#inspector = new Inspector(spec.acceptProxyProtocol, spec.tls !== undefined);
      return this.#read();
    }
    if (!this.#inspected && spec.firstByteTimeoutMs > 0) {
      // As HAProxy's inspect-delay: connect once the client has spoken (or hung up), so a silent
      // client never costs the target a connection; closed at the deadline otherwise.
      this.#inspected = true;
      this.#firstByte = true;
      return this.#waitFor(spec.firstByteTimeoutMs);
    }
    this.#route(undefined, NO_ALPN);
  }

  /** Protection let a connection in: one held after its PROXY header reads on; else start(). */
  admitted(): void {
    if (this.#inspector === null) return this.start();
    this.#clearHold();
    if (this.#state !== WAITING || this.#closing) return;
    if (this.#step(this.#inspector.feed(EMPTY))) this.#read();
  }

  /** 2. Read what the fd has now; wait for more with the engine when it has nothing. */
  #read(): void {
    const inspector = this.#inspector!;
    for (;;) {
      const n = this.engine.recv(this.fd, scratch);
      if (n === -EAGAIN) return this.#waitInput();
      if (n === 0) return this.refuse('bad-handshake', 'ERR_HANDSHAKE_EOF');
      if (n < 0) return this.refuse('client-error', ERRNO_CODES[-n] ?? `ERRNO_${-n}`);
      this.#readBefore += n;
      this.bytesIn = this.#readBefore;
      // A copy: the inspector may keep the chunk while it waits for the rest.
      if (!this.#step(inspector.feed(Buffer.from(scratch.subarray(0, n))))) return;
    }
  }

  /** One inspect step; true: read on. */
  #step(step: number): boolean {
    const inspector = this.#inspector!;
    if (step === HEADER) {
      // LOCAL (a health check) and UNKNOWN carry no addresses: the connection's own stand.
      const h = inspector.header!;
      if (h.sourceAddress !== undefined && h.destinationAddress !== undefined) {
        this.clientAddress = h.sourceAddress;
        this.clientPort = h.sourcePort ?? 0;
        this.#destAddress = h.destinationAddress;
        this.#destPort = h.destinationPort;
      }
      // Protection on the real client address: refused, or held until the listener calls admitted().
      if (this.host.admit !== undefined && !this.host.admit(this)) {
        if (this.#state === WAITING && !this.#finished) this.#hold();
        return false;
      }
      step = inspector.feed(EMPTY);
    }
    if (step === MORE) return true;
    if (step === FAILED) {
      this.refuse('bad-handshake', inspector.code!);
      return false;
    }
    if (step !== DONE) return false;
    this.#inspector = null;
    this.#inspected = true;
    if (this.host.spec.tls !== undefined) {
      this.handshakeMs = performance.now() - this.t0;
      this.sni = inspector.sni;
    }
    this.#preUp = inspector.rest;
    this.#route(inspector.sni, inspector.alpn);
    return false;
  }

  /** Held after the header: the rest of HandshakeTimeoutMs, then a handshake timeout as on the JS path. */
  #hold(): void {
    const left = Math.max(0, this.host.spec.handshakeTimeoutMs - (performance.now() - this.t0));
    this.#holdTimer = setTimeout(onHoldExpired, left, this);
    this.#holdTimer.unref();
  }

  #clearHold(): void {
    if (this.#holdTimer === null) return;
    clearTimeout(this.#holdTimer);
    this.#holdTimer = null;
  }

  /** @internal the hold timer fired: still waiting for admission. */
  holdExpired(): void {
    this.#holdTimer = null;
    if (this.#state === WAITING && !this.#finished) this.refuse('handshake-timeout', 'ERR_HANDSHAKE_TIMEOUT');
  }

  /** The engine watches the fd until HandshakeTimeoutMs from accept. */
  #waitInput(): void {
    const left = this.host.spec.handshakeTimeoutMs - (performance.now() - this.t0);
    if (left <= 0) return this.refuse('handshake-timeout', 'ERR_HANDSHAKE_TIMEOUT');
    this.#waitFor(left);
  }

  #waitFor(ms: number): void {
    try {
      this.engine.waitReadable(this.id, this.fd, ms, this);
    } catch (err) {
      // Out of memory: the fd is still ours.
      return this.refuse('client-error', (err as NodeJS.ErrnoException).code ?? 'ENOMEM');
    }
    this.#state = READING;
  }

  /** ConnectionSink: the engine's answer to waitReadable (the fd is ours again). */
  readable(timedOut: boolean): void {
    this.#state = WAITING;
    if (this.#closing) return this.#closeHeld(this.#closingReset);
    if (this.#firstByte) {
      this.#firstByte = false;
      if (!timedOut) return this.#route(undefined, NO_ALPN);
      // Closed, not reset, as the JS path's sweep does.
      this.fail('first-byte-timeout', 'ERR_FIRST_BYTE_TIMEOUT');
      return this.#closeHeld(false);
    }
    if (timedOut) return this.refuse('handshake-timeout', 'ERR_HANDSHAKE_TIMEOUT');
    this.#read();
  }

  /** 3. route, 4. connect. */
  #route(sni: string | undefined, alpn: readonly string[]): void {
    const pool = this.host.router.pool(sni, alpn);
    if (pool.size === 0) return this.refuse('no-route', 'ERR_NO_ROUTE');
    const send = this.host.spec.sendProxyProtocol;
    if (send !== 'none') {
      const header = this.#proxyHeaderOut(send);
      this.#preUp = this.#preUp === null ? header : Buffer.concat([header, this.#preUp]);
    }
    this.#pool = pool;
    const key = this.host.spec.strategy === 'source-hash' ? this.clientAddress : undefined;
    this.#job = this.host.connector.dialWith(pool, key, this.startedAt, this);
  }

  /**
   * Source: the client (from the PROXY header if one came). Destination: where the client
   * connected — the PROXY header's destination if one came, else the accepted socket's own address.
   */
  #proxyHeaderOut(version: 'v1' | 'v2'): Buffer {
    const src = { address: this.clientAddress, port: this.clientPort, family: familyOf(this.clientAddress) };
    let address = this.#destAddress;
    let port = this.#destPort ?? 0;
    if (address === undefined) {
      const local = this.engine.localAddress(this.fd);
      address = local?.address ?? '';
      port = local?.port ?? 0;
    }
    const dst = { address, port, family: familyOf(address) };
    return version === 'v1' ? buildProxyHeaderV1(src, dst) : buildProxyHeaderV2(src, dst);
  }

  /** Dialer: one attempt, made by the engine with the client fd. */
  dial(job: DialJob, address: string, port: number, timeoutMs: number): void {
    try {
      this.engine.connect(this.id, this.fd, address, port, timeoutMs, this.host.spec.idleTimeoutMs, this.#preUp, this);
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
    this.bytesIn = this.#readBefore + r.bytesIn;
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
    this.#clearHold();
    this.#state = CLOSED;
    const state = this.targetState;
    if (state !== null && this.#pool !== null) this.#pool.release(state);
    this.#pool = null;
    this.host.onNativeClosed(this);
  }
}

/** The builder reads the family from the address text; this is only its hint. */
function familyOf(address: string): 4 | 6 {
  return address.includes(':') ? 6 : 4;
}

function onHoldExpired(s: NativeSession): void {
  s.holdExpired();
}
