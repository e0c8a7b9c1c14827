// JsEngine: forwarding with Node's net.Socket streams — the reference the native engine must match,
// and the fallback (no compiled addon, FPROXY_ENGINE=js, TLS-terminated clients). The same handlers
// as proxy/session.ts step 5: shared functions with `this` the socket, no closure per chunk.
import type net from 'node:net';
import type { Engine, EngineOutcome, ForwardHandle, ForwardOptions, ForwardResult } from './engine.ts';

const kPair = Symbol('pair');
type PairSocket = net.Socket & { [kPair]: JsPair };

class JsPair implements ForwardHandle {
  readonly engine: JsEngine;
  readonly client: PairSocket;
  readonly upstream: PairSocket;
  readonly onClose: (r: ForwardResult) => void;
  readonly readAtStart: number;
  readonly writtenAtStart: number;
  outcome: EngineOutcome = 'ok';
  done = false;

  constructor(engine: JsEngine, client: net.Socket, upstream: net.Socket, onClose: (r: ForwardResult) => void) {
    this.engine = engine;
    this.client = client as PairSocket;
    this.upstream = upstream as PairSocket;
    this.onClose = onClose;
    this.readAtStart = client.bytesRead;
    this.writtenAtStart = client.bytesWritten;
  }

  peerOf(s: PairSocket): PairSocket {
    return s === this.client ? this.upstream : this.client;
  }

  close(reset = false): void {
    if (this.done) return;
    if (this.outcome === 'ok') this.outcome = 'drained';
    if (reset) {
      this.client.resetAndDestroy();
      this.upstream.resetAndDestroy();
      return;
    }
    this.client.destroy();
    this.upstream.destroy();
  }

  finish(): void {
    if (this.done) return;
    this.done = true;
    this.engine.closed(this);
    const c = this.client;
    this.onClose({ bytesIn: c.bytesRead - this.readAtStart, bytesOut: c.bytesWritten - this.writtenAtStart, outcome: this.outcome });
  }
}

export class JsEngine implements Engine {
  readonly kind = 'js' as const;
  readonly #pairs = new Set<JsPair>();

  get open(): number {
    return this.#pairs.size;
  }

  forward(client: net.Socket, upstream: net.Socket, opts: ForwardOptions, onClose: (r: ForwardResult) => void): ForwardHandle {
    const p = new JsPair(this, client, upstream, onClose);
    this.#pairs.add(p);
    const c = p.client;
    const u = p.upstream;
    c[kPair] = p;
    u[kPair] = p;
    if (opts.preludeUp != null && opts.preludeUp.length > 0) u.write(opts.preludeUp);
    if (opts.preludeDown != null && opts.preludeDown.length > 0) c.write(opts.preludeDown);
    for (const s of [c, u]) {
      s.on('data', onData);
      s.on('drain', onDrain);
      s.on('end', onEnd);
      s.on('error', onError);
      s.on('close', onClose_);
    }
    // Every byte either way is a read or a write on the client side, so one timer covers both.
    if (opts.idleTimeoutMs > 0) {
      c.setTimeout(opts.idleTimeoutMs);
      c.on('timeout', onIdle);
    }
    c.resume();
    u.resume();
    return p;
  }

  drainBy(delayMs: number): void {
    setTimeout(() => {
      for (const p of [...this.#pairs]) p.close();
    }, delayMs).unref();
  }

  /** @internal */
  closed(p: JsPair): void {
    this.#pairs.delete(p);
  }
}

function onData(this: PairSocket, chunk: Buffer): void {
  if (!this[kPair].peerOf(this).write(chunk)) this.pause();
}
function onDrain(this: PairSocket): void {
  this[kPair].peerOf(this).resume();
}
function onEnd(this: PairSocket): void {
  const peer = this[kPair].peerOf(this);
  // The peer already sent its FIN and has nothing left to write: closing it sends our FIN as end()
  // would, without the shutdown() syscall and its round of stream callbacks.
  if (peer.readableEnded && peer.writableLength === 0) {
    peer.destroy();
    return;
  }
  peer.end();
}
function onError(this: PairSocket): void {
  const p = this[kPair];
  if (p.outcome === 'ok') p.outcome = this === p.upstream ? 'upstream-error' : 'client-error';
  const other = p.peerOf(this);
  if (!other.destroyed) other.resetAndDestroy();
}
function onClose_(this: PairSocket): void {
  const p = this[kPair];
  const peer = p.peerOf(this);
  if (!peer.destroyed) {
    if (peer.readableEnded && peer.writableEnded) {
      // Both FINs are through: the peer closes itself once its last bytes are flushed.
      peer.setTimeout(FLUSH_DEADLINE_MS);
      peer.once('timeout', onFlushDeadline);
      return;
    }
    peer.destroy();
  }
  if (peer.destroyed && this.destroyed && peer.closed && this.closed) p.finish();
}
const FLUSH_DEADLINE_MS = 30_000;
function onFlushDeadline(this: PairSocket): void {
  this.destroy();
}
function onIdle(this: PairSocket): void {
  const p = this[kPair];
  if (p.outcome === 'ok') p.outcome = 'idle-timeout';
  this.destroy();
  p.peerOf(this).destroy();
}
