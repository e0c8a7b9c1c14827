// Session: the life of one client connection, top to bottom:
//   1. accept (the socket arrives paused: nothing is read until we know where it goes)
//   2. inspect: read the PROXY header and/or peek the ClientHello, when the app asks for either,
//      bounded by handshakeTimeoutMs and the parsers' size caps
//   3. route: pick the target pool (SNI/ALPN route or the app's default pool)
//   4. connect: Connector tries targets within the budget; failure → RST to the client
//   5. forward: write the prelude (outgoing PROXY header, peeked bytes), then bytes both ways with
//      backpressure and half-close, until both sides end, either errors, or the idle timeout fires
//   6. close: one counter update and, at debug, one access-log line
//
// Invariants: after step 5 starts only the forwarding handlers touch the sockets; a failure is an
// outcome (counted, logged at debug), never an exception out of the process; an error or reset on
// one side resets the other.
import type net from 'node:net';
import type { ConnectError, ConnectHandle, ConnectResult } from './connector.ts';
import type { ListenerContext } from './listener-context.ts';
import { parseProxyHeader, buildProxyHeaderV1, buildProxyHeaderV2 } from './proxy-protocol.ts';
import { parseClientHello } from './tls/client-hello.ts';
import type { RoundRobin } from './round-robin.ts';
import type { TargetSpec } from './spec.ts';

export type Outcome = 'ok' | 'connect-failed' | 'no-route' | 'handshake-timeout' | 'bad-handshake' | 'client-error' | 'upstream-error' | 'idle-timeout' | 'drained';

const kPeer = Symbol('peer');
const kSession = Symbol('session');
type Peered = net.Socket & { [kPeer]: Peered; [kSession]: Session };

export class Session {
  readonly ctx: ListenerContext;
  readonly client: net.Socket;
  readonly startedAt: number;
  upstream: net.Socket | null = null;
  /** Set from a PROXY header; otherwise read lazily (getpeername is a syscall per connection). */
  #clientAddress: string | undefined;
  #clientPort: number | undefined;
  sni: string | undefined;
  target: string | undefined;
  endpoint: string | undefined;
  attempts = 0;
  outcome: Outcome = 'ok';
  #inspectBuf: Buffer | null = null;
  #prelude: Buffer | null = null;
  #timer: NodeJS.Timeout | null = null;
  #connect: ConnectHandle | null = null;
  #proxyDone: boolean;
  #closed = false;

  constructor(ctx: ListenerContext, client: net.Socket) {
    this.ctx = ctx;
    this.client = client;
    this.startedAt = Date.now();
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
    if (this.#proxyDone && this.ctx.spec.tls?.mode !== 'passthrough') return this.#route(undefined, []);
    // 2. inspect
    this.#timer = setTimeout(onHandshakeTimeout, this.ctx.spec.handshakeTimeoutMs, this);
    c.on('data', onInspectData);
    c.resume();
  }

  /** @internal 2. inspect: called with every chunk until the header/hello is complete. */
  inspect(chunk: Buffer): void {
    const buf = this.#inspectBuf === null ? chunk : Buffer.concat([this.#inspectBuf, chunk]);
    this.#inspectBuf = buf;
    let offset = 0;
    if (!this.#proxyDone) {
      const r = parseProxyHeader(buf);
      if (r.status === 'need-more') return;
      if (r.status === 'error') return this.#abort('bad-handshake', r.code);
      this.#proxyDone = true;
      if (r.header.sourceAddress !== undefined) {
        this.#clientAddress = r.header.sourceAddress;
        this.#clientPort = r.header.sourcePort;
      }
      offset = r.length;
      this.#inspectBuf = buf.subarray(offset);
    }
    const rest = this.#inspectBuf;
    if (this.ctx.spec.tls?.mode !== 'passthrough') {
      // PROXY header only: the remaining bytes (if any) go upstream first.
      return this.#endInspect(rest.length > 0 ? rest : null, undefined, []);
    }
    if (rest.length === 0) return;
    const hello = parseClientHello(rest);
    if (hello.status === 'need-more') return;
    if (hello.status === 'error') return this.#abort('bad-handshake', hello.code);
    this.#endInspect(rest, hello.sni, hello.alpn);
  }

  #endInspect(prelude: Buffer | null, sni: string | undefined, alpn: readonly string[]): void {
    const c = this.client;
    c.removeListener('data', onInspectData);
    c.pause();
    this.#clearTimer();
    this.#prelude = prelude;
    this.#inspectBuf = null;
    this.#route(sni, alpn);
  }

  /** @internal */
  handshakeTimedOut(): void {
    this.#timer = null;
    this.#abort('handshake-timeout', 'ERR_HANDSHAKE_TIMEOUT');
  }

  // 3. route
  #route(sni: string | undefined, alpn: readonly string[]): void {
    this.sni = sni;
    const pool: RoundRobin<TargetSpec> | undefined = this.ctx.router.pool(sni, alpn);
    if (pool === undefined || pool.size === 0) return this.#abort('no-route', 'ERR_NO_ROUTE');
    // 4. connect
    this.#connect = this.ctx.connector.connect(pool, this.startedAt, (err, res) => this.#connected(err, res));
  }

  #connected(err: ConnectError | null, res: ConnectResult | null): void {
    this.#connect = null;
    if (err !== null || res === null) {
      this.attempts = err?.attempts ?? 0;
      this.target = err?.lastTarget;
      this.endpoint = err?.lastEndpoint;
      this.ctx.onConnectFailed(this, err);
      return this.#abort('connect-failed', 'ERR_CONNECT_EXHAUSTED');
    }
    this.attempts = res.attempts;
    this.target = res.target.raw;
    this.endpoint = res.endpoint;
    if (this.#closed) {
      res.socket.destroy();
      return;
    }
    this.#forward(res.socket);
  }

  // 5. forward
  #forward(up: net.Socket): void {
    const c = this.client as Peered;
    const u = up as Peered;
    this.upstream = up;
    c.removeListener('error', onClientEarlyError);
    c.removeListener('close', onClientEarlyClose);
    c[kPeer] = u;
    u[kPeer] = c;
    u[kSession] = this;

    const send = this.ctx.spec.sendProxyProtocol;
    if (send !== 'none') u.write(this.#proxyHeaderOut(send));
    if (this.#prelude !== null) {
      u.write(this.#prelude);
      this.#prelude = null;
    }
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
    // Every byte either way is a read or a write on the client socket, so one timer covers both.
    if (idle > 0) {
      c.setTimeout(idle);
      c.on('timeout', onIdle);
    }
    c.resume();
  }

  #proxyHeaderOut(version: 'v1' | 'v2'): Buffer {
    const c = this.client;
    const srcAddr = this.clientAddress ?? '0.0.0.0';
    const family = srcAddr.includes(':') ? 6 : 4;
    const dstAddr = c.localAddress ?? (family === 6 ? '::' : '0.0.0.0');
    const src = { address: unmapV4(srcAddr, family), port: this.clientPort ?? 0, family: family as 4 | 6 };
    const dst = { address: unmapV4(dstAddr, family), port: c.localPort ?? 0, family: family as 4 | 6 };
    return version === 'v1' ? buildProxyHeaderV1(src, dst) : buildProxyHeaderV2(src, dst);
  }

  #abort(outcome: Outcome, _code: string): void {
    this.outcome = outcome;
    this.#clearTimer();
    // RST: the client learns at once that nothing is behind us (no half-open wait).
    if (!this.client.destroyed) this.client.resetAndDestroy();
    this.finish();
  }

  #clearTimer(): void {
    if (this.#timer !== null) {
      clearTimeout(this.#timer);
      this.#timer = null;
    }
  }

  /** Close both sides now (drain timeout). */
  destroy(outcome: Outcome): void {
    if (this.#closed) return;
    this.outcome = outcome;
    this.client.destroy();
    this.upstream?.destroy();
    this.finish();
  }

  /** @internal 6. close: runs once. */
  finish(): void {
    if (this.#closed) return;
    this.#closed = true;
    this.#clearTimer();
    if (this.#connect !== null) {
      this.#connect.cancel();
      this.#connect = null;
    }
    this.ctx.onSessionClosed(this);
  }
}

function unmapV4(address: string, family: number): string {
  // A dual-stack socket reports IPv4 clients as ::ffff:a.b.c.d; PROXY v1 TCP4 wants a.b.c.d.
  if (family === 6 && address.startsWith('::ffff:') && address.includes('.')) return address.slice(7);
  return address;
}

// ---- shared handlers: `this` is the socket; no closure per connection or per chunk ----

function onInspectData(this: Peered, chunk: Buffer): void {
  this[kSession].inspect(chunk);
}
function onHandshakeTimeout(s: Session): void {
  s.handshakeTimedOut();
}
function onClientEarlyError(this: Peered): void {
  const s = this[kSession];
  s.outcome = 'client-error';
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
  // Half-close: pass the FIN on; the other direction keeps flowing until it ends too.
  this[kPeer].end();
}
function onError(this: Peered): void {
  const s = this[kSession];
  if (s.outcome === 'ok') s.outcome = this === s.client ? 'client-error' : 'upstream-error';
  const peer = this[kPeer];
  if (!peer.destroyed) peer.resetAndDestroy();
}
function onClose(this: Peered): void {
  const peer = this[kPeer];
  if (!peer.destroyed) peer.destroy();
  // Both sockets emit close; finish() runs once, after both are gone.
  if (peer.destroyed && this.destroyed && peer.closed && this.closed) this[kSession].finish();
}
function onIdle(this: Peered): void {
  const s = this[kSession];
  s.outcome = 'idle-timeout';
  this.destroy();
  this[kPeer].destroy();
}
