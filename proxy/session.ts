// Session: the life of one client connection, top to bottom:
//   1. accept (the socket arrives paused: nothing is read until we know where it goes)
//   2. inspect, when the app asks for it, all within handshakeTimeoutMs:
//      a. PROXY header (acceptProxyProtocol): parsed and stripped; its source becomes the client
//      b. passthrough: peek the ClientHello for SNI/ALPN; the bytes stay to be forwarded
//      c. terminate: hand the socket (bytes after the PROXY header unshifted) to TLS; the
//         handshake's SNI and ALPN decide the route
//   3. route: pick the target pool (SNI/ALPN route or the app's default pool); none → RST
//   4. connect: Connector tries the pool's targets within the budget; failure → RST to the client
//      (every target at its MaxConnections: queued up to queueTimeoutMs, then over-limit)
//   5. forward: write the prelude (outgoing PROXY header, peeked bytes), then bytes both ways with
//      backpressure and half-close, until both sides end, either errors, or the idle timeout fires
//   6. close: fail() records why (the first failure wins: outcome and code, written nowhere else);
//      finish() runs once: releases the target's connection count, one metrics update and (AccessLog,
//      or debug) one access-log line
//
// Invariants: a plain TCP app without PROXY header goes from 1 straight to 3 (no timer, no buffer);
// inspecting never copies more than O(bytes received) however the bytes are split, and rejects a
// byte that cannot start a PROXY header / ClientHello as soon as it arrives; a client FIN that
// arrives after inspecting and before forwarding is passed on when forwarding starts (a FIN while
// inspecting ends the session: the header/hello can never complete); after step 5 starts
// only the forwarding handlers touch the sockets; a failure is an outcome with a stable `code`
// (counted, logged at debug), never an exception out of the process; an error or reset on one side
// resets the other.
import type net from 'node:net';
import type tls from 'node:tls';
import type { ConnectError, ConnectHandle, ConnectResult } from './connector.ts';
import type { EngineOutcome, ForwardHandle, ForwardResult } from './engine/engine.ts';
import type { ListenerContext } from './listener-context.ts';
import { buildProxyHeaderV1, buildProxyHeaderV2, type ProxyEndpoint } from './proxy-protocol.ts';
import { DONE, EMPTY, FAILED, HEADER, Inspector, MORE, NO_ALPN } from './inspect.ts';
import type { TargetPool } from './pool/target-pool.ts';
import type { TargetState } from './pool/target-state.ts';
import type { HandoverSession } from './ipc/protocol.ts';
import { socketFromFd } from './engine/socket-from-fd.ts';

/** A forwarding session taken off its listener, to move to another process (issue 16 §2). */
export interface HandOff {
  readonly client: net.Socket;
  readonly upstream: net.Socket;
  /** State without `pending`; fromClient/fromUpstream: bytes read and not yet written to the other side. */
  readonly state: Omit<HandoverSession, 'pending'>;
  readonly fromClient: Buffer;
  readonly fromUpstream: Buffer;
}

type WithHandle = net.Socket & { _handle?: { readStop?: () => number } | null; _readableState?: { ended?: boolean } };

export type Outcome = 'ok' | 'connect-failed' | 'no-route' | 'handshake-timeout' | 'bad-handshake' | 'client-error' | 'upstream-error' | 'idle-timeout' | 'drained'
  | 'denied' | 'over-limit' | 'rate-limited' | 'queue-timeout' | 'max-duration' | 'first-byte-timeout';
export type Failure = Exclude<Outcome, 'ok'>;

const kPeer = Symbol('peer');
const kSession = Symbol('session');
type Peered = net.Socket & { [kPeer]: Peered; [kSession]: Session };

export { NO_ALPN };
/** The reason codes the JS path gives the same outcomes (the native engine reports no errno); NativeSession uses them too. */
export const ENGINE_CODES: Readonly<Record<Exclude<EngineOutcome, 'ok'>, string>> = {
  // The engine reports a failed side, not its errno; a reset is what it sees nearly always.
  'client-error': 'ECONNRESET',
  'upstream-error': 'ECONNRESET',
  'idle-timeout': 'ERR_IDLE_TIMEOUT',
  'drained': 'ERR_DRAINED',
};

export class Session {
  readonly ctx: ListenerContext;
  /** The accepted TCP socket (its byte counts are the wire's, TLS included). */
  readonly client: net.Socket;
  startedAt: number;
  /** performance.now() at accept: the timers below count from it (Date.now() is too coarse for them). */
  t0: number;
  /** A handed-over session: bytes the client sent / was sent before it came to this process. */
  bytesInBefore = 0;
  bytesOutBefore = 0;
  /** ms from accept to the end of the TLS handshake (ClientHello read, or terminated); -1 = none. */
  handshakeMs = -1;
  /** ms from the start of connecting to the upstream's connect; -1 = no upstream. */
  connectMs = -1;
  #connectStart = 0;
  upstream: net.Socket | null = null;
  /** Set from a PROXY header; otherwise read lazily (getpeername is a syscall per connection). */
  #clientAddress: string | undefined;
  #clientPort: number | undefined;
  #destAddress: string | undefined;
  #destPort: number | undefined;
  sni: string | undefined;
  /** Terminate: the protocol negotiated. Passthrough: not known (the target negotiates). */
  alpn: string | undefined;
  target: string | undefined;
  /** The connected target's state (its connection is counted until finish()). */
  targetState: TargetState | null = null;
  #pool: TargetPool | null = null;
  endpoint: string | undefined;
  attempts = 0;
  /** Written only by fail(). */
  outcome: Outcome = 'ok';
  /** Why the session failed, when it did: ERR_NOT_TLS, ERR_PROXY_HEADER_MISSING, ERR_NO_ROUTE … Written only by fail(). */
  code: string | undefined;
  /** What bytes are forwarded from and to on the client side: `client`, or the TLS socket over it. */
  #down: net.Socket;
  /** Step 2's reader of the first bytes, while inspecting. */
  #inspector: Inspector | null = null;
  #prelude: Buffer | null = null;
  #timer: NodeJS.Timeout | null = null;
  #connect: ConnectHandle | null = null;
  #proxyDone: boolean;
  /** Reading to inspect; a FIN now means the header/hello can never complete. */
  #inspecting = false;
  /** Held for admission after a complete PROXY header: a FIN now is remembered, not fatal (the bytes before it may be all the client sends). */
  #held = false;
  /** The client's FIN came between inspect and forward; pass it on once forwarding starts. */
  #clientEnded = false;
  #closed = false;
  /** Set when an engine forwards (native): its handle, then the client side's byte totals. */
  #engine: ForwardHandle | null = null;
  engineTotals: { bytesIn: number; bytesOut: number } | null = null;
  /** The client socket's counts when the engine took over (the engine counts from there). */
  #readBefore = 0;
  #writtenBefore = 0;
  /** A handed-over session: bytes for the client before anything from the upstream (native engine). */
  #preludeDown: Buffer | null = null;
  /** Native handover: a detach is asked / was refused for good (half-closed). */
  #detaching = false;
  #detachRefused = false;

  constructor(ctx: ListenerContext, client: net.Socket) {
    this.ctx = ctx;
    this.client = client;
    this.#down = client;
    this.startedAt = Date.now();
    this.t0 = performance.now();
    this.#proxyDone = !ctx.spec.acceptProxyProtocol;
  }

  /** Client address as seen, or as the PROXY header says. */
  get clientAddress(): string | undefined {
    return this.#clientAddress ?? this.client.remoteAddress;
  }

  get clientPort(): number | undefined {
    return this.#clientPort ?? this.client.remotePort;
  }

  // 1. accept
  start(): void {
    const c = this.client as Peered;
    c[kSession] = this;
    c.on('error', onClientEarlyError);
    c.on('close', onClientEarlyClose);
    const tlsMode = this.ctx.spec.tls?.mode;
    if (this.#proxyDone && tlsMode === undefined) {
      // Connecting starts now, in this very tick: no second clock read.
      this.#connectStart = this.t0;
      return this.#route(undefined, NO_ALPN);
    }
    // 2. inspect
    this.#timer = setTimeout(onHandshakeTimeout, this.ctx.spec.handshakeTimeoutMs, this);
    if (this.#proxyDone && tlsMode === 'terminate') return this.#terminate(null);
    this.#inspector = new Inspector(!this.#proxyDone, tlsMode === 'passthrough');
    c.on('data', onInspectData);
    // Until forwarding starts: pause() does not stop Node from reading ahead to the FIN (the stream
    // keeps filling up to its high-water mark), and an 'end' nobody hears would be lost for good.
    c.on('end', onClientEarlyEnd);
    this.#inspecting = true;
    c.resume();
  }

  /** @internal 2. inspect: called with every chunk until the header/hello is complete. */
  inspect(chunk: Buffer): void {
    const inspector = this.#inspector;
    if (inspector === null) return;
    let step = inspector.feed(chunk);
    if (step === HEADER) {
      this.#proxyDone = true;
      // LOCAL (a health check) and UNKNOWN carry no addresses: the connection's own stand.
      const h = inspector.header!;
      if (h.sourceAddress !== undefined && h.destinationAddress !== undefined) {
        this.#clientAddress = h.sourceAddress;
        this.#clientPort = h.sourcePort;
        this.#destAddress = h.destinationAddress;
        this.#destPort = h.destinationPort;
      }
      // Protection (issue 12) on the real client address: refused, or paused until the listener calls admitted().
      if (this.ctx.admit !== undefined && !this.ctx.admit(this)) {
        if (!this.#closed) this.#held = true;
        return void this.client.pause();
      }
      step = inspector.feed(EMPTY);
    }
    if (step === MORE) return;
    if (step === FAILED) return this.#abort('bad-handshake', inspector.code!);
    if (step !== DONE) return;
    // The bytes after the header go to TLS (terminate) or upstream first (PROXY only, passthrough).
    if (this.ctx.spec.tls?.mode === 'terminate') return this.#terminate(inspector.rest);
    this.#endInspect(inspector.rest, inspector.sni, inspector.alpn);
  }

  /** Protection let a session held after its PROXY header in: go on with the bytes already received. */
  admitted(): void {
    this.#held = false;
    this.client.resume();
    this.inspect(EMPTY);
    // Ended while held, and what came before the FIN is not a whole ClientHello: it never will be.
    if (this.#clientEnded && this.#inspecting && !this.#closed) this.#abort('bad-handshake', 'ERR_HANDSHAKE_EOF');
  }

  /** Protection refused the client: RST, no upstream. */
  refuse(outcome: Failure, code: string): void {
    this.#abort(outcome, code);
  }

  #stopInspecting(): void {
    const c = this.client;
    c.removeListener('data', onInspectData);
    c.pause();
    this.#inspecting = false;
    this.#inspector = null;
  }

  #endInspect(prelude: Buffer | null, sni: string | undefined, alpn: readonly string[]): void {
    this.#stopInspecting();
    this.#clearTimer();
    if (this.ctx.spec.tls !== undefined) this.handshakeMs = performance.now() - this.t0;
    this.#prelude = prelude;
    this.#route(sni, alpn);
  }

  // 2c. terminate: the handshake timer keeps running until the TLS socket is secure.
  #terminate(rest: Buffer | null): void {
    const terminator = this.ctx.terminator;
    this.#stopInspecting();
    if (terminator === undefined) return this.#abort('bad-handshake', 'ERR_TLS_NOT_CONFIGURED');
    const c = this.client;
    // From here TLS reads the socket's handle itself; its EOF reaches the TLS socket, not `c`.
    c.removeListener('end', onClientEarlyEnd);
    if (rest !== null && rest.length > 0) c.unshift(rest);
    const t = terminator.wrap(c) as tls.TLSSocket & Peered;
    t[kSession] = this;
    this.#down = t;
    t.on('secure', onSecure);
    t.on('error', onTlsEarlyError);
    // A TLS socket reads ahead too: a close_notify/FIN right after the handshake would go unheard.
    t.on('end', onClientEarlyEnd);
  }

  /** @internal 2c done: the handshake completed. */
  secured(t: tls.TLSSocket): void {
    if (this.#closed) return;
    this.#clearTimer();
    this.handshakeMs = performance.now() - this.t0;
    this.sni = t.servername || undefined;
    this.alpn = t.alpnProtocol || undefined;
    // The ALPN callback chose the protocol that leads to the same route as the whole offer did.
    this.#route(this.sni, this.alpn === undefined ? NO_ALPN : [this.alpn]);
  }

  /** @internal a TLS error before forwarding starts. */
  tlsFailed(err: NodeJS.ErrnoException): void {
    if (this.#closed) return;
    const handshaking = this.#timer !== null;
    this.#abort(handshaking ? 'bad-handshake' : 'client-error', handshaking ? 'ERR_TLS_HANDSHAKE' : (err.code ?? 'ERR_CLIENT'));
  }

  /** @internal the client's FIN before forwarding: fatal while inspecting, remembered after. */
  clientEndedEarly(): void {
    if (this.#inspecting && !this.#held) return this.#abort('bad-handshake', 'ERR_HANDSHAKE_EOF');
    this.#clientEnded = true;
  }

  /** @internal */
  handshakeTimedOut(): void {
    this.#timer = null;
    this.#abort('handshake-timeout', 'ERR_HANDSHAKE_TIMEOUT');
  }

  // 3. route
  #route(sni: string | undefined, alpn: readonly string[]): void {
    this.sni = sni;
    const pool = this.ctx.router.pool(sni, alpn);
    if (pool.size === 0) return this.#abort('no-route', 'ERR_NO_ROUTE');
    // 4. connect (only source-hash needs the client's address: reading it is a syscall)
    this.#pool = pool;
    if (this.#connectStart === 0) this.#connectStart = performance.now();
    const key = this.ctx.spec.strategy === 'source-hash' ? this.clientAddress : undefined;
    this.#connect = this.ctx.connector.connect(pool, key, this.startedAt, (err, res) => this.#connected(err, res));
  }

  #connected(err: ConnectError | null, res: ConnectResult | null): void {
    this.#connect = null;
    if (err !== null || res === null) {
      this.attempts = err?.attempts ?? 0;
      this.target = err?.lastTarget;
      this.endpoint = err?.lastEndpoint;
      // Every target at its MaxConnections (after the queue, if any): a refusal, not a dead pool.
      if (err?.code === 'ERR_TARGETS_FULL') return this.#abort('over-limit', 'ERR_TARGETS_FULL');
      this.ctx.onConnectFailed(this, err);
      return this.#abort('connect-failed', 'ERR_CONNECT_EXHAUSTED');
    }
    this.connectMs = performance.now() - this.#connectStart;
    this.attempts = res.attempts;
    this.target = res.target.raw;
    this.targetState = res.state;
    this.endpoint = res.endpoint;
    if (this.#closed) {
      this.#releaseTarget();
      res.socket.destroy();
      return;
    }
    this.#forward(res.socket);
  }

  // 5. forward
  #forward(up: net.Socket, adopted = false): void {
    const c = this.#down as Peered;
    const u = up as Peered;
    this.upstream = up;
    this.client.removeListener('error', onClientEarlyError);
    this.client.removeListener('close', onClientEarlyClose);
    this.client.removeListener('end', onClientEarlyEnd);
    if (c !== this.client) {
      c.removeListener('error', onTlsEarlyError);
      c.removeListener('secure', onSecure);
      c.removeListener('end', onClientEarlyEnd);
    }
    // The native engine takes plain TCP pairs (a TLS socket's fd carries ciphertext).
    // FirstByteTimeoutMs reads the client socket's own byte count, which stops at a hand-off.
    if (c === this.client && this.ctx.engine.kind === 'native' && this.ctx.spec.firstByteTimeoutMs === 0) return this.#forwardByEngine(up, adopted);
    c[kPeer] = u;
    u[kPeer] = c;
    u[kSession] = this;

    const send = this.ctx.spec.sendProxyProtocol;
    if (send !== 'none' && !adopted) u.write(this.#proxyHeaderOut(send));
    if (this.#prelude !== null) {
      u.write(this.#prelude);
      this.#prelude = null;
    }
    if (this.#clientEnded) u.end();
    c.on('data', onData);
    u.on('data', onData);
    c.on('drain', onDrain);
    u.on('drain', onDrain);
    c.on('end', onEnd);
    u.on('end', onEnd);
    c.on('error', onError);
    u.on('error', onError);
    c.on('close', onClose);
    u.on('close', onClose);
    const idle = this.ctx.spec.idleTimeoutMs;
    // Every byte either way is a read or a write on the client side, so one timer covers both.
    if (idle > 0) {
      c.setTimeout(idle);
      c.on('timeout', onIdle);
    }
    c.resume();
  }

  /** 5 by the engine: it owns both sockets from here and reports once; the prelude goes along. */
  #forwardByEngine(up: net.Socket, adopted: boolean): void {
    const send = this.ctx.spec.sendProxyProtocol;
    const header = send === 'none' || adopted ? null : this.#proxyHeaderOut(send);
    const prelude = header === null ? this.#prelude : this.#prelude === null ? header : Buffer.concat([header, this.#prelude]);
    this.#prelude = null;
    // The engine reports what it moved from here on; the socket counted what came before.
    // A handed-over session's earlier bytes (bytes*Before) count too.
    const readBefore = this.bytesInBefore + this.client.bytesRead;
    const writtenBefore = this.bytesOutBefore + this.client.bytesWritten;
    this.#readBefore = readBefore;
    this.#writtenBefore = writtenBefore;
    const preludeDown = this.#preludeDown;
    this.#preludeDown = null;
    this.#engine = this.ctx.engine.forward(this.client, up, { preludeUp: prelude, preludeDown, idleTimeoutMs: this.ctx.spec.idleTimeoutMs }, (r: ForwardResult) => {
      this.engineTotals = { bytesIn: readBefore + r.bytesIn, bytesOut: writtenBefore + r.bytesOut };
      if (r.outcome !== 'ok') this.fail(r.outcome, ENGINE_CODES[r.outcome]);
      this.finish();
    });
  }

  /**
   * Source: the client (from the PROXY header if one came). Destination: where the client connected,
   * i.e. the PROXY header's destination if one came, else our own socket's. The builder takes the
   * address text as the truth (IPv4-mapped pairs go out as TCP4), so the family is only a hint.
   */
  #proxyHeaderOut(version: 'v1' | 'v2'): Buffer {
    const c = this.client;
    const src = endpointOf(this.clientAddress, this.clientPort);
    const dst = this.#destAddress !== undefined ? endpointOf(this.#destAddress, this.#destPort) : endpointOf(c.localAddress, c.localPort);
    return version === 'v1' ? buildProxyHeaderV1(src, dst) : buildProxyHeaderV2(src, dst);
  }

  /**
   * Take a forwarding session off this process at a clean point (issue 16 §2): plain TCP or TLS
   * passthrough (the client socket carries the bytes), both sides open both ways (a half-closed
   * session drains where it is), nothing waiting to be written. Stops reading both sockets, takes
   * what Node had read ahead, and detaches every handler; the session is then closed here without
   * being counted (the process that adopts it counts it when it ends). Undefined = not movable now.
   */
  handOff(): HandOff | Promise<HandOff | undefined> | undefined {
    if (this.#engine !== null) return this.#handOffFromEngine();
    const c = this.client as WithHandle;
    const u = this.upstream as WithHandle | null;
    if (this.#closed || u === null || this.#down !== this.client || this.#clientEnded || this.target === undefined) return undefined;
    for (const x of [c, u]) {
      if (x.destroyed || x.writableEnded || x.writableLength > 0 || x.readableEnded || x._readableState?.ended === true || typeof x._handle?.readStop !== 'function') return undefined;
    }
    for (const x of [c, u]) {
      x.removeListener('data', onData);
      x.removeListener('drain', onDrain);
      x.removeListener('end', onEnd);
      x.removeListener('error', onError);
      x.removeListener('close', onClose);
    }
    c.removeListener('timeout', onIdle);
    c.setTimeout(0);
    const fromClient = takeReadAhead(c);
    const fromUpstream = takeReadAhead(u);
    const state = this.#handOffState(this.bytesInBefore + c.bytesRead, this.bytesOutBefore + c.bytesWritten);
    this.#closed = true;
    this.#clearTimer();
    this.#releaseTarget();
    return { client: c, upstream: u, state, fromClient, fromUpstream };
  }

  /**
   * handOff for a pair the native engine forwards: the engine detaches it at a clean point (its
   * loop thread stops reading both sides) and gives back both fds and what it held in its buffers;
   * the fds become paused sockets that read nothing. Undefined: not now (a detach is under way, or
   * refused for good: half-closed); the promise's undefined: refused (it keeps forwarding here, or
   * it is closing and reports as usual).
   */
  #handOffFromEngine(): Promise<HandOff | undefined> | undefined {
    const handle = this.#engine!;
    if (this.#closed || this.#detaching || this.#detachRefused || handle.detach === undefined || this.target === undefined) return undefined;
    this.#detaching = true;
    return handle.detach().then((r) => {
      this.#detaching = false;
      if (!r.ok) {
        if (r.reason === 'half-closed') this.#detachRefused = true;
        return undefined;
      }
      const d = r.pair;
      const state = this.#handOffState(this.#readBefore + d.bytesIn, this.#writtenBefore + d.bytesOut);
      this.#engine = null;
      this.#closed = true;
      this.#clearTimer();
      this.#releaseTarget();
      return { client: socketFromFd(d.clientFd), upstream: socketFromFd(d.upstreamFd), state, fromClient: d.toUpstream, fromUpstream: d.toClient };
    });
  }

  #handOffState(bytesIn: number, bytesOut: number): HandOff['state'] {
    return {
      target: this.target!,
      ...(this.endpoint === undefined ? {} : { endpoint: this.endpoint }),
      ...(this.clientAddress === undefined ? {} : { client: this.clientAddress }),
      ...(this.sni === undefined ? {} : { sni: this.sni }),
      startedAt: this.startedAt,
      bytesIn,
      bytesOut,
      attempts: this.attempts,
      connectMs: this.connectMs,
      handshakeMs: this.handshakeMs,
    };
  }

  /**
   * A session handed over by another process: both sockets connected, forwarding resumes at once
   * (the bytes the old process had read ahead are written first). No PROXY header is sent again.
   */
  static adopt(ctx: ListenerContext, client: net.Socket, upstream: net.Socket, state: HandoverSession, fromUpstream: Buffer, attach?: (s: Session) => void): Session {
    const s = new Session(ctx, client);
    s.startedAt = state.startedAt;
    s.t0 = performance.now() - Math.max(0, Date.now() - state.startedAt);
    s.target = state.target;
    s.endpoint = state.endpoint;
    s.sni = state.sni;
    s.attempts = state.attempts;
    s.connectMs = state.connectMs;
    s.handshakeMs = state.handshakeMs;
    s.#clientAddress = state.client;
    s.bytesInBefore = state.bytesIn;
    s.bytesOutBefore = state.bytesOut;
    // The listener counts it (sessions, target, limits) before anything can end it.
    attach?.(s);
    // Sockets made from a received handle do not allow half-open; ours always do (see onEnd).
    client.allowHalfOpen = true;
    upstream.allowHalfOpen = true;
    const fromClient = Buffer.from(state.pending, 'base64');
    s.#prelude = fromClient.length > 0 ? fromClient : null;
    (client as Peered)[kSession] = s;
    // Reset or closed while waiting to be adopted: the other side goes too (counted here).
    if (client.destroyed || upstream.destroyed) {
      s.upstream = upstream;
      s.fail(client.destroyed ? 'client-error' : 'upstream-error', client.destroyed ? 'ERR_CLIENT' : 'ERR_UPSTREAM');
      client.destroy();
      upstream.destroy();
      s.finish();
      return s;
    }
    // Older than anything the upstream sends from now on (its data events come in a later tick). The
    // native engine takes it as its client prelude: a write still queued in the socket would be lost
    // when the engine takes the fd.
    const native = ctx.engine.kind === 'native' && ctx.spec.firstByteTimeoutMs === 0;
    if (fromUpstream.length > 0) {
      if (native) s.#preludeDown = fromUpstream;
      else client.write(fromUpstream);
    }
    // An 'end' that came before adoption (see proxy/main.ts onAdopt) is passed on as forward would
    // (the native engine reads that EOF from the socket again: a received FIN stays readable).
    s.#clientEnded = client.readableEnded;
    s.#forward(upstream, true);
    if (!native && upstream.readableEnded) client.end();
    return s;
  }

  /** A handed-over session's connection, counted on its target by the adopting listener: released at finish(). */
  countOn(pool: TargetPool, state: TargetState): void {
    this.#pool = pool;
    this.targetState = state;
  }

  #abort(outcome: Failure, code: string): void {
    this.fail(outcome, code);
    this.#clearTimer();
    // RST: the client learns at once that nothing is behind us (no half-open wait). A TLS socket
    // over it is destroyed by Node once the TCP socket has closed; destroying it here, before the
    // handle is closed, frees the TLS state under libuv's feet (a native heap corruption).
    if (!this.client.destroyed) this.client.resetAndDestroy();
    this.finish();
  }

  #clearTimer(): void {
    if (this.#timer !== null) {
      clearTimeout(this.#timer);
      this.#timer = null;
    }
  }

  /**
   * Close both sides now: `drained` (drain timeout, ERR_DRAINED) or a target marked down with
   * OnTargetDown "close" (`reset`: RST both ways, as HAProxy's shutdown-sessions).
   */
  destroy(outcome: Failure, code: string, reset = false): void {
    if (this.#closed) return;
    this.fail(outcome, code);
    // The engine closes its pair and reports; finish() runs then, with its byte counts.
    if (this.#engine !== null) return this.#engine.close(reset);
    if (reset) {
      // The TCP sockets only: a TLS socket over the client goes with it (see #abort).
      if (!this.client.destroyed) this.client.resetAndDestroy();
      if (this.upstream !== null && !this.upstream.destroyed) this.upstream.resetAndDestroy();
    } else {
      this.#down.destroy();
      this.client.destroy();
      this.upstream?.destroy();
    }
    this.finish();
  }

  /** 6. close, part one: why the session ends. The first failure wins; 'ok' stays when none came. */
  fail(outcome: Failure, code: string): void {
    if (this.outcome !== 'ok') return;
    this.outcome = outcome;
    this.code = code;
  }

  /** @internal 6. close, part two: runs once, when both sides are gone (or will be at once). */
  finish(): void {
    if (this.#closed) return;
    this.#closed = true;
    this.#clearTimer();
    this.#inspector = null;
    if (this.#connect !== null) {
      this.#connect.cancel();
      this.#connect = null;
    }
    this.#releaseTarget();
    this.ctx.onSessionClosed(this);
  }

  #releaseTarget(): void {
    const state = this.targetState;
    if (state === null || this.#pool === null) return;
    this.#pool.release(state);
    this.#pool = null;
  }
}

/** Stop reading `s` and return what Node had read ahead of the handlers (synchronously: no read can land in between). */
function takeReadAhead(s: WithHandle): Buffer {
  s.pause();
  const chunks: Buffer[] = [];
  for (let chunk = s.read() as Buffer | null; chunk !== null; chunk = s.read() as Buffer | null) chunks.push(chunk);
  // read() may have restarted reading (the buffer fell below the high-water mark): stop it last.
  s._handle!.readStop!();
  return chunks.length === 1 ? chunks[0]! : Buffer.concat(chunks);
}

function endpointOf(address: string | undefined, port: number | undefined): ProxyEndpoint {
  // An unknown address makes the builder send UNKNOWN / AF_UNSPEC instead of failing the connection.
  const a = address ?? '';
  return { address: a, port: port ?? 0, family: a.includes(':') ? 6 : 4 };
}

// ---- shared handlers: `this` is the socket; no closure per connection or per chunk ----

function onInspectData(this: Peered, chunk: Buffer): void {
  this[kSession].inspect(chunk);
}
function onClientEarlyEnd(this: Peered): void {
  this[kSession].clientEndedEarly();
}
function onHandshakeTimeout(s: Session): void {
  s.handshakeTimedOut();
}
function onSecure(this: tls.TLSSocket & Peered): void {
  this[kSession].secured(this);
}
function onTlsEarlyError(this: Peered, err: NodeJS.ErrnoException): void {
  this[kSession].tlsFailed(err);
}
function onClientEarlyError(this: Peered, err: NodeJS.ErrnoException): void {
  const s = this[kSession];
  s.fail('client-error', err.code ?? 'ERR_CLIENT');
  this.destroy();
  s.finish();
}
function onClientEarlyClose(this: Peered): void {
  this[kSession].finish();
}

function onData(this: Peered, chunk: Buffer): void {
  if (!this[kPeer].write(chunk)) this.pause();
}
function onDrain(this: Peered): void {
  this[kPeer].resume();
}
function onEnd(this: Peered): void {
  const peer = this[kPeer];
  // The peer already sent its FIN and has nothing left to write: closing it sends our FIN just as
  // end() would, without the shutdown() syscall and its round of stream callbacks (plain TCP only;
  // TLS needs end() for close_notify).
  if (peer.readableEnded && peer.writableLength === 0 && (peer as { encrypted?: boolean }).encrypted !== true) {
    peer.destroy();
    return;
  }
  // Half-close: pass the FIN on; the other direction keeps flowing until it ends too.
  peer.end();
}
function onError(this: Peered, err: NodeJS.ErrnoException): void {
  const s = this[kSession];
  const fromUpstream = this === s.upstream;
  s.fail(fromUpstream ? 'upstream-error' : 'client-error', err.code ?? (fromUpstream ? 'ERR_UPSTREAM' : 'ERR_CLIENT'));
  // Reset the other side's TCP socket: the client's, not the TLS socket over it (no RST there).
  const other = fromUpstream ? s.client : this[kPeer];
  if (!other.destroyed) other.resetAndDestroy();
}
function onClose(this: Peered): void {
  const peer = this[kPeer];
  if (!peer.destroyed) {
    if (peer.readableEnded && peer.writableEnded) {
      // Both FINs are through: the peer closes itself once its last bytes are flushed. Destroying it
      // now would drop them; a reader that never drains them is cut off at the flush deadline.
      peer.setTimeout(FLUSH_DEADLINE_MS);
      peer.once('timeout', onFlushDeadline);
      return;
    }
    peer.destroy();
  }
  // Both sockets emit close; finish() runs once, after both are gone.
  if (peer.destroyed && this.destroyed && peer.closed && this.closed) this[kSession].finish();
}
const FLUSH_DEADLINE_MS = 30_000;
function onFlushDeadline(this: Peered): void {
  this.destroy();
}
function onIdle(this: Peered): void {
  const s = this[kSession];
  s.fail('idle-timeout', 'ERR_IDLE_TIMEOUT');
  this.destroy();
  this[kPeer].destroy();
}
