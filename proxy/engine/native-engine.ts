// NativeEngine: Node accepts and connects; a C thread (native/forwarder.c over engine-core.c,
// epoll, recv/send, 16 KiB pooled buffers) forwards. forward() reads the two fds, lets the addon
// dup() them, and destroys the JS sockets: closing one descriptor of a shared file description
// sends nothing while the dup stays open. Bytes the JS sockets had already read go along as
// preludes. The addon keeps one engine per process, so this module keeps one NativeEngine.
//
// Not for TLS-terminated clients (a TLSSocket's fd carries ciphertext) or sockets without an fd:
// those pairs go to the JS engine given as fallback.
import { existsSync } from 'node:fs';
import { createRequire } from 'node:module';
import path from 'node:path';
import type net from 'node:net';
import { fileURLToPath } from 'node:url';
import { closeSync } from 'node:fs';
import type { DetachResult, Engine, EngineOutcome, ForwardHandle, ForwardOptions, ForwardResult } from './engine.ts';

interface Addon {
  start(threads: number, onClosed: (results: Float64Array) => void, onAccepted?: (accepts: Float64Array, addresses: string[]) => void, offloadThreads?: number): void;
  add(id: number, fdClient: number, fdUpstream: number, idleMs: number, preUp: Buffer | null, preDown: Buffer | null): void;
  close(id: number, reset?: boolean): void;
  drainBy(delayMs: number): void;
  setOffload(busyPct: number, hotBytes: number, settle: boolean, connected: boolean): void;
  stats(): { pairs: number; buffersInUse: number; buffersPooled: number; offloaded: number; ringLoops: number };
  ref(): void;
  unref(): void;
  listen(lid: number, fd: number): number;
  unlisten(lid: number, engineFd: number): void;
  connect(id: number, fd: number, ip: string, port: number, timeoutMs: number, idleMs: number, preUp: Buffer | null): void;
  closeFd(fd: number, reset: boolean): void;
  waitReadable(id: number, fd: number, timeoutMs: number): void;
  recv(fd: number, buffer: Buffer): number;
  localAddress(fd: number): [string, number] | null;
  /** Issue 16 (absent in an older build): where detach answers go, set once; then detach(id) asks. */
  onDetached?(fn: (answers: DetachAnswer[]) => void): void;
  detach?(id: number): void;
}

interface DetachAnswer {
  readonly id: number;
  readonly status: 'detached' | 'gone' | 'half-closed';
  readonly clientFd: number;
  readonly upstreamFd: number;
  readonly toUpstream: Buffer | null;
  readonly toClient: Buffer | null;
  readonly bytesIn: number;
  readonly bytesOut: number;
}

/** How long a detach may wait for the loop thread's answer (it comes within one loop turn). */
const DETACH_TIMEOUT_MS = 5000;
const NO_BYTES = Buffer.alloc(0);

/** Where the engine reports accepted sockets of one listening socket (see NativeEngine.listen). */
export interface AcceptSink {
  /** A client socket the engine accepted: `fd` is the caller's (connect it, or closeFd it). */
  accepted(fd: number, address: string, port: number): void;
  /** accept4 failed for want of descriptors or memory (`code`: EMFILE …): the engine retries in 100 ms. */
  acceptFailed(code: string): void;
}

/** What happens to one connection the engine connects and forwards (NativeEngine.connect). */
export interface ConnectionSink {
  /**
   * The attempt's answer: `connected`, or a failure with the errno (`ECONNREFUSED` …); after a
   * failure the client fd is the caller's again, still open.
   */
  connectResult(result: ConnectOutcome, errno: number): void;
  /** The forwarded (or still connecting) pair closed; after this the id is gone. */
  closed(r: ForwardResult): void;
  /** waitReadable's answer: the fd is the caller's again; something to read, or the time ran out. */
  readable(timedOut: boolean): void;
}

export type ConnectOutcome = 'connected' | 'refused' | 'timeout' | 'unreachable';
/** Indexed by outcome code − 5 (engine-core.h FE_CONNECTED …). */
const CONNECT_OUTCOMES: readonly ConnectOutcome[] = ['connected', 'refused', 'timeout', 'unreachable'];

/** Indexed by the addon's outcome code (engine-core.h enum fe_outcome). */
const OUTCOMES: readonly EngineOutcome[] = ['ok', 'client-error', 'upstream-error', 'idle-timeout', 'drained'];
const ADDON_FILE = 'build/native/forwarder.node';
/**
 * The inline engine's offload loop threads (FPROXY_ENGINE_OFFLOAD_THREADS). The listener's own
 * thread accepts, decides and connects, and the pairs it connects are forwarded by it and its
 * offload threads in turn: a listener forwards on 1 + this many cores. One, as HAProxy's nbthread 2
 * on 2 cores; Workers then defaults to cores ÷ 2 (daemon/config/to-spec.ts). A second offload
 * thread on 2 cores cost more per new connection (93-112 µs against 69-77, alternating runs).
 */
export const DEFAULT_OFFLOAD_THREADS = 1;
/** engine-core.h FE_UNLISTENED: a listener's socket closed, every accept on it reported. */
const FE_UNLISTENED = 9;
/** engine-core.h FE_READABLE / FE_READ_TIMEOUT: waitReadable's answers. */
const FE_READABLE = 10;
const FE_READ_TIMEOUT = 11;
/** engine-core.h FE_ACCEPT_FAILED: a listener's accept4 failed (EMFILE …); bytesIn is the errno. */
const FE_ACCEPT_FAILED = 12;
/** The errnos FE_ACCEPT_FAILED reports. */
const ACCEPT_ERRNOS: Readonly<Record<number, string>> = { 24: 'EMFILE', 23: 'ENFILE', 105: 'ENOBUFS', 12: 'ENOMEM' };

/**
 * Where the built addon is: FPROXY_ENGINE_ADDON, else `build/native/forwarder.node` in the first
 * directory above this module that has one (the source tree, or the repo above the listener
 * bundle in node_modules/.cache/fproxy/).
 */
export function findAddon(env: NodeJS.ProcessEnv = process.env): string | undefined {
  if (env.FPROXY_ENGINE_ADDON) return env.FPROXY_ENGINE_ADDON;
  let dir = path.dirname(fileURLToPath(import.meta.url));
  for (let i = 0; i < 8; i++) {
    const candidate = path.join(dir, ADDON_FILE);
    if (existsSync(candidate)) return candidate;
    const up = path.dirname(dir);
    if (up === dir) break;
    dir = up;
  }
  return undefined;
}

class NativePair implements ForwardHandle {
  readonly addon: Addon;
  readonly id: number;
  readonly onClose: (r: ForwardResult) => void;
  readonly engine: NativeEngine;
  detach: (() => Promise<DetachResult>) | undefined;
  constructor(engine: NativeEngine, addon: Addon, id: number, onClose: (r: ForwardResult) => void) {
    this.engine = engine;
    this.addon = addon;
    this.id = id;
    this.onClose = onClose;
    if (addon.detach !== undefined) this.detach = () => engine.detachPair(this);
  }
  close(reset = false): void {
    this.addon.close(this.id, reset);
  }
}

let instance: NativeEngine | undefined;

export class NativeEngine implements Engine {
  readonly kind = 'native' as const;
  readonly #addon: Addon;
  readonly #fallback: Engine;
  readonly #pairs = new Map<number, NativePair>();
  /** Connections the engine accepted and connects or forwards (stage 3), by id. */
  readonly #conns = new Map<number, ConnectionSink>();
  readonly #listeners = new Map<number, AcceptSink>();
  /** lid → the engine's own descriptor of that listening socket (for unlisten's shutdown). */
  readonly #listenFds = new Map<number, number>();
  /** lid → resolves unlisten()'s promise when the engine confirms (FE_UNLISTENED). */
  readonly #unlistening = new Map<number, () => void>();
  #nextLid = 0;
  #refd = false;
  #nextId = 0;
  /** Pairs with a detach asked and not answered yet. */
  readonly #detaching = new Map<number, { resolve: (r: DetachResult) => void; timer: NodeJS.Timeout }>();

  /** The process's native engine (the addon is loaded and started once). Throws if it cannot load. */
  /** threads 0: the inline engine, with `offloadThreads` offload loop threads. */
  static get(fallback: Engine, threads = 0, addonPath: string | undefined = findAddon(), offloadThreads = DEFAULT_OFFLOAD_THREADS): NativeEngine {
    if (instance !== undefined) return instance;
    if (addonPath === undefined) throw Object.assign(new Error(`native engine not built (no ${ADDON_FILE}; run make native)`), { code: 'ERR_ENGINE_NOT_BUILT' });
    const addon = createRequire(import.meta.url)(addonPath) as Addon;
    instance = new NativeEngine(addon, fallback, threads, offloadThreads);
    return instance;
  }

  private constructor(addon: Addon, fallback: Engine, threads: number, offloadThreads: number) {
    this.#addon = addon;
    this.#fallback = fallback;
    addon.start(threads, (results) => this.#closed(results), (accepts, addresses) => this.#accepted(accepts, addresses), offloadThreads);
    addon.onDetached?.((answers) => this.#detached(answers));
  }

  get open(): number {
    return this.#pairs.size + this.#conns.size + this.#fallback.open;
  }

  /**
   * Accept on a listening socket (Node's fd: the engine takes a dup, so the caller closes its server
   * right after; nothing is accepted by Node in between as long as this runs in the same tick as
   * the server's 'listening'). Returns the id for unlisten().
   */
  listen(fd: number, sink: AcceptSink): number {
    const lid = ++this.#nextLid;
    this.#listenFds.set(lid, this.#addon.listen(lid, fd));
    this.#listeners.set(lid, sink);
    this.#updateRef();
    return lid;
  }

  /**
   * Stop accepting at once and close the listening socket (what waits in its queue is reset by the
   * kernel, or migrated with tcp_migrate_req), as server.close() does.
   */
  unlisten(lid: number): Promise<void> {
    const fd = this.#listenFds.get(lid);
    if (fd === undefined) return Promise.resolve();
    this.#listenFds.delete(lid);
    // The sink stays: accepts already on their way are still reported; the promise resolves once
    // the engine says every one of them was (they reach the sink first).
    const done = new Promise<void>((resolve) => this.#unlistening.set(lid, resolve));
    this.#addon.unlisten(lid, fd);
    this.#updateRef();
    return done;
  }

  /** A new connection id (shared with forward()'s pairs: the engine reports by id). */
  newId(): number {
    return ++this.#nextId;
  }

  /**
   * Connect accepted client `fd` to ip:port within timeoutMs, then forward it (preUp first, idle
   * timeout as forward()). `sink` hears the result and later the close. Throws (fd still the
   * caller's) only on bad arguments or out of memory.
   */
  connect(id: number, fd: number, ip: string, port: number, timeoutMs: number, idleMs: number, preUp: Buffer | null, sink: ConnectionSink): void {
    this.#addon.connect(id, fd, ip, port, Math.max(0, Math.min(0xffffffff, Math.ceil(timeoutMs))), idleMs, preUp);
    this.#conns.set(id, sink);
    this.#updateRef();
  }

  /**
   * Watch accepted client `fd` for its first bytes (a PROXY header, a ClientHello) for up to
   * timeoutMs (0: no limit): `sink.readable()` hears when to read it (recv), with the fd the
   * caller's again; close(id) while it waits closes the fd (sink.closed). Throws (fd still the
   * caller's) only on bad arguments or out of memory.
   */
  waitReadable(id: number, fd: number, timeoutMs: number, sink: ConnectionSink): void {
    this.#addon.waitReadable(id, fd, Math.max(0, Math.min(0xffffffff, Math.ceil(timeoutMs))));
    this.#conns.set(id, sink);
    this.#updateRef();
  }

  /** One non-blocking read of a client fd the caller holds: bytes read, 0 at EOF, −errno (−11: EAGAIN). */
  recv(fd: number, buffer: Buffer): number {
    return this.#addon.recv(fd, buffer);
  }

  /** Where a client fd the caller holds was connected to (getsockname); undefined if unknown. */
  localAddress(fd: number): { address: string; port: number } | undefined {
    const a = this.#addon.localAddress(fd);
    return a === null ? undefined : { address: a[0], port: a[1] };
  }

  /** Close connection `id` (connecting or forwarding): FIN both ways, or RST with `reset`. */
  close(id: number, reset = false): void {
    this.#addon.close(id, reset);
  }

  /** Close a client socket JS holds (accepted, between attempts): FIN, or RST with `reset`. */
  closeFd(fd: number, reset: boolean): void {
    this.#addon.closeFd(fd, reset);
  }

  /** The thread-safe callback keeps the process alive only while something is open or listening. */
  #updateRef(): void {
    const want = this.#pairs.size + this.#conns.size + this.#listenFds.size + this.#unlistening.size > 0;
    if (want === this.#refd) return;
    this.#refd = want;
    if (want) this.#addon.ref();
    else this.#addon.unref();
  }

  #accepted(accepts: Float64Array, addresses: string[]): void {
    for (let i = 0, k = 0; i + 2 < accepts.length; i += 3, k++) {
      const sink = this.#listeners.get(accepts[i]!);
      const fd = accepts[i + 1]!;
      if (sink === undefined) {
        this.#addon.closeFd(fd, false);
        continue;
      }
      try {
        sink.accepted(fd, addresses[k]!, accepts[i + 2]!);
      } catch (err) {
        queueMicrotask(() => { throw err; });
      }
    }
  }

  /** Buffers and pairs as the C side counts them (tests: an idle pair holds no buffer). */
  stats(): { pairs: number; buffersInUse: number; buffersPooled: number; offloaded: number; ringLoops: number } {
    return this.#addon.stats();
  }

  forward(client: net.Socket, upstream: net.Socket, opts: ForwardOptions, onClose: (r: ForwardResult) => void): ForwardHandle {
    const fc = fdOf(client);
    const fu = fdOf(upstream);
    if (fc < 0 || fu < 0 || (client as { encrypted?: boolean }).encrypted === true) return this.#fallback.forward(client, upstream, opts, onClose);
    // Whatever the streams hold already (read ahead, not consumed) must not be lost.
    const pendingUp = unread(client);
    const preUp = opts.preludeUp != null && opts.preludeUp.length > 0 ? (pendingUp === null ? opts.preludeUp : Buffer.concat([opts.preludeUp, pendingUp])) : pendingUp;
    const pendingDown = unread(upstream);
    const preDown = opts.preludeDown != null && opts.preludeDown.length > 0 ? (pendingDown === null ? opts.preludeDown : Buffer.concat([opts.preludeDown, pendingDown])) : pendingDown;
    const id = ++this.#nextId;
    this.#addon.add(id, fc, fu, opts.idleTimeoutMs, preUp, preDown);
    // The addon holds dups now: closing Node's descriptors sends neither FIN nor RST.
    client.destroy();
    upstream.destroy();
    const p = new NativePair(this, this.#addon, id, onClose);
    this.#pairs.set(id, p);
    // Keep the process alive while pairs are open (the addon's callback is unref'd when idle).
    this.#updateRef();
    return p;
  }

  /** @internal NativePair.detach: ask the loop thread; one answer per pair at a time. */
  detachPair(p: NativePair): Promise<DetachResult> {
    if (!this.#pairs.has(p.id)) return Promise.resolve({ ok: false, reason: 'gone' });
    return this.#detach(p.id);
  }

  /**
   * A connection the engine accepted and connected (connect()): take it out at a clean point, as
   * NativePair.detach does (issue 16 handover). Once detached its sink hears nothing more.
   */
  detachConnection(id: number): Promise<DetachResult> {
    if (!this.#conns.has(id) || this.#addon.detach === undefined) return Promise.resolve({ ok: false, reason: 'gone' });
    return this.#detach(id);
  }

  #detach(id: number): Promise<DetachResult> {
    const p = { id };
    if (this.#detaching.has(p.id)) return Promise.resolve({ ok: false, reason: 'timeout' });
    return new Promise((resolve) => {
      const timer = setTimeout(() => {
        this.#detaching.delete(p.id);
        resolve({ ok: false, reason: 'timeout' });
      }, DETACH_TIMEOUT_MS);
      this.#detaching.set(p.id, { resolve, timer });
      this.#addon.detach!(p.id);
    });
  }

  #detached(answers: DetachAnswer[]): void {
    for (const a of answers) {
      const waiter = this.#detaching.get(a.id);
      this.#detaching.delete(a.id);
      if (waiter !== undefined) clearTimeout(waiter.timer);
      if (a.status !== 'detached') {
        // Gone: its close report comes (or came) on the other callback. Half-closed: it goes on.
        waiter?.resolve({ ok: false, reason: a.status });
        continue;
      }
      const p = this.#pairs.get(a.id);
      this.#pairs.delete(a.id);
      const c = this.#conns.get(a.id);
      this.#conns.delete(a.id);
      if (waiter === undefined) {
        // Answered after its timeout: nobody takes the fds. Closing them ends the connection; the
        // pair's one report says so.
        closeSync(a.clientFd);
        closeSync(a.upstreamFd);
        try {
          p?.onClose({ bytesIn: a.bytesIn, bytesOut: a.bytesOut, outcome: 'drained' });
          c?.closed({ bytesIn: a.bytesIn, bytesOut: a.bytesOut, outcome: 'drained' });
        } catch (err) {
          queueMicrotask(() => { throw err; });
        }
        continue;
      }
      waiter.resolve({ ok: true, pair: { clientFd: a.clientFd, upstreamFd: a.upstreamFd, toUpstream: a.toUpstream ?? NO_BYTES, toClient: a.toClient ?? NO_BYTES, bytesIn: a.bytesIn, bytesOut: a.bytesOut } });
    }
    this.#updateRef();
  }

  /**
   * The inline loop's offload policy: hot pairs (read hotBytes in a 100 ms window) move while the
   * loop is busy (busyPct of the window); settled ones (lived a window, moved bytes in the next:
   * keep-alive) always move unless `settle` is false; pairs the engine connects move once connected
   * unless `connected` is false. Tests change them.
   */
  setOffload(busyPct: number, hotBytes: number, settle = true, connected = true): void {
    this.#addon.setOffload(busyPct, hotBytes, settle, connected);
  }

  drainBy(delayMs: number): void {
    this.#addon.drainBy(delayMs);
    this.#fallback.drainBy(delayMs);
  }

  #closed(results: Float64Array): void {
    for (let i = 0; i + 3 < results.length; i += 4) {
      const id = results[i]!;
      if (results[i + 3] === FE_ACCEPT_FAILED) {
        // `id` is a listener id here too.
        const errno = results[i + 1]!;
        this.#listeners.get(id)?.acceptFailed(ACCEPT_ERRNOS[errno] ?? `ERRNO_${errno}`);
        continue;
      }
      if (results[i + 3] === FE_UNLISTENED) {
        // `id` is a listener id here (its own number space).
        this.#unlistening.get(id)?.();
        this.#unlistening.delete(id);
        continue;
      }
      const p = this.#pairs.get(id);
      if (p === undefined) {
        const c = this.#conns.get(id);
        if (c !== undefined) this.#connReport(id, c, results, i);
        continue;
      }
      this.#pairs.delete(p.id);
      try {
        p.onClose({ bytesIn: results[i + 1]!, bytesOut: results[i + 2]!, outcome: OUTCOMES[results[i + 3]!] ?? 'drained' });
      } catch (err) {
        // One caller's bug must not lose the other results of this batch.
        queueMicrotask(() => { throw err; });
      }
    }
    this.#updateRef();
  }

  #connReport(id: number, c: ConnectionSink, results: Float64Array, i: number): void {
    const code = results[i + 3]!;
    try {
      if (code === FE_READABLE || code === FE_READ_TIMEOUT) {
        this.#conns.delete(id);
        c.readable(code === FE_READ_TIMEOUT);
      } else if (code >= 5) {
        const outcome = CONNECT_OUTCOMES[code - 5] ?? 'unreachable';
        if (outcome !== 'connected') this.#conns.delete(id);
        c.connectResult(outcome, results[i + 1]!);
      } else {
        this.#conns.delete(id);
        c.closed({ bytesIn: results[i + 1]!, bytesOut: results[i + 2]!, outcome: OUTCOMES[code] ?? 'drained' });
      }
    } catch (err) {
      queueMicrotask(() => { throw err; });
    }
  }
}

function fdOf(s: net.Socket): number {
  const fd = (s as unknown as { _handle?: { fd?: number } | null })._handle?.fd;
  return typeof fd === 'number' ? fd : -1;
}

/** Bytes a stream has read from its socket that nobody consumed yet. */
function unread(s: net.Socket): Buffer | null {
  if (s.readableLength === 0) return null;
  const chunks: Buffer[] = [];
  let c: Buffer | null;
  while ((c = s.read() as Buffer | null) !== null) chunks.push(c);
  return chunks.length === 0 ? null : chunks.length === 1 ? chunks[0]! : Buffer.concat(chunks);
}
