// Engine: the socket-engine seam. Once the policy (session steps 1-4) has a connected client and
// upstream, an engine owns both sockets and forwards bytes both ways until the pair ends, then
// reports once. Implementations: JsEngine (Node streams; the reference and the fallback) and
// NativeEngine (a C epoll thread, proxy/engine/native/). engine.case.ts runs one suite on both.
//
// Contract, whichever the engine:
//   - forward() takes both sockets over; the caller never touches them again.
//   - preludeUp goes to the upstream before any client byte (preludeDown to the client before any
//     upstream byte); bytes either socket had already read
//     but nobody consumed are forwarded too (nothing is lost at the hand-off).
//   - backpressure both ways; a FIN one way is passed on once that direction's bytes are flushed,
//     the other way keeps flowing; an error or reset on one side resets the other.
//   - idleTimeoutMs (0 = none): no byte either way for that long closes both sides.
//   - onClose runs exactly once, asynchronously, with the bytes this engine moved on the client
//     side (bytesIn: read from the client, bytesOut: written to it) and the outcome.
import type net from 'node:net';

export type EngineKind = 'js' | 'native';
export type EngineOutcome = 'ok' | 'client-error' | 'upstream-error' | 'idle-timeout' | 'drained';

export interface ForwardResult {
  readonly bytesIn: number;
  readonly bytesOut: number;
  readonly outcome: EngineOutcome;
}

export interface ForwardOptions {
  /** Bytes for the upstream before anything from the client (outgoing PROXY header, peeked bytes). */
  readonly preludeUp?: Buffer | null;
  /** Close both sides after this long without a byte either way; 0 = never. */
  readonly idleTimeoutMs: number;
  /** Bytes for the client before anything from the upstream (a handed-over pair's pending bytes). */
  readonly preludeDown?: Buffer | null;
}

/** A pair taken out of its engine at a clean point (issue 16): both fds are the caller's to use and close. */
export interface Detached {
  readonly clientFd: number;
  readonly upstreamFd: number;
  /** Read from the client, not yet written to the upstream: goes to the upstream first. */
  readonly toUpstream: Buffer;
  /** Read from the upstream, not yet written to the client: goes to the client first. */
  readonly toClient: Buffer;
  /** As ForwardResult: what this engine moved on the client side (toUpstream counted in bytesIn). */
  readonly bytesIn: number;
  readonly bytesOut: number;
}

/**
 * detach()'s answer. Refused: `gone` (closed already; onClose runs or ran), `half-closed` (a FIN
 * went one way: it stays and keeps forwarding), `timeout` (no answer in time; it stays).
 */
export type DetachResult = { readonly ok: true; readonly pair: Detached } | { readonly ok: false; readonly reason: 'gone' | 'half-closed' | 'timeout' };

export interface ForwardHandle {
  /** Close both sides now (outcome `drained`), with a FIN, or a RST when `reset`; onClose still runs once. */
  close(reset?: boolean): void;
  /** Engines that can: stop forwarding at a clean point and give the pair back; onClose then never runs. */
  detach?(): Promise<DetachResult>;
}

export interface Engine {
  readonly kind: EngineKind;
  /** Pairs forwarded and not yet reported closed. */
  readonly open: number;
  forward(client: net.Socket, upstream: net.Socket, opts: ForwardOptions, onClose: (r: ForwardResult) => void): ForwardHandle;
  /** Close every pair still open `delayMs` from now (outcome `drained`). */
  drainBy(delayMs: number): void;
}
