// Engine: the socket-engine seam. Once the policy (session steps 1-4) has a connected client and
// upstream, an engine owns both sockets and forwards bytes both ways until the pair ends, then
// reports once. Implementations: JsEngine (Node streams; the reference and the fallback) and
// NativeEngine (a C epoll thread, proxy/engine/native/). engine.case.ts runs one suite on both.
//
// Contract, whichever the engine:
//   - forward() takes both sockets over; the caller never touches them again.
//   - preludeUp goes to the upstream before any client byte; bytes either socket had already read
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
}

export interface ForwardHandle {
  /** Close both sides now (outcome `drained`), with a FIN, or a RST when `reset`; onClose still runs once. */
  close(reset?: boolean): void;
}

export interface Engine {
  readonly kind: EngineKind;
  /** Pairs forwarded and not yet reported closed. */
  readonly open: number;
  forward(client: net.Socket, upstream: net.Socket, opts: ForwardOptions, onClose: (r: ForwardResult) => void): ForwardHandle;
  /** Close every pair still open `delayMs` from now (outcome `drained`). */
  drainBy(delayMs: number): void;
}
