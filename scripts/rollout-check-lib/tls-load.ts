// The TLS client side of rollout-check. tlsExchange() is one fresh TLS connection (handshake,
// send, read the tagged echo, close) that settles exactly once, on the first of: reply judged,
// peer end, socket error, or its own timer. tlsLoad() runs `concurrency` workers of those back to
// back, alternating SNI names, until `signal` aborts or `durationMs` passes, and counts failures
// by kind as simulate does; a reply is a success only once `judge` accepts it (which target
// answered, with which certificate). Stopping lets exchanges in flight finish (each is bounded by
// `timeoutMs` plus a 1 s close), so stopping never manufactures errors.
// `ratePerSec` caps the starts: a TLS exchange costs ~2.5 ms of CPU in node (client and target
// ends together, mostly the handshake), so an uncapped loop would take a whole core from the
// other load, the probes and the listeners being measured.
import { performance } from 'node:perf_hooks';
import tls from 'node:tls';
import { replyTag, replyVerdict } from '../../ftest/echo-reply.ts';
import { FAILURE_KINDS, formatMs, makeFailure, socketFailure } from '../../ftest/failure.ts';
import type { Failure, FailureKind } from '../../ftest/failure.ts';
import { LatencyHistogram } from '../../ftest/latency.ts';
import type { Percentiles } from '../../ftest/latency.ts';

export interface TlsReply {
  /** The target's tag, the text before the first ':' of the reply. */
  readonly tag: string;
  /** SHA-256 fingerprint of the certificate the client was shown ("AB:CD:…"). */
  readonly fingerprint256: string;
  /** Connect + handshake + exchange, close excluded. */
  readonly rttMs: number;
}

export type TlsExchangeResult = ({ ok: true } & TlsReply) | { ok: false; failure: Failure };

export interface TlsExchangeOptions {
  readonly port: number;
  readonly servername: string;
  readonly data: Buffer;
  /** Connect, handshake and reply together. */
  readonly timeoutMs: number;
}

/** One client context for every exchange: without it tls.connect builds one per connection, CA store included. */
let clientContext: tls.SecureContext | undefined;

/** Time the close (our end → the peer's close) may take before the socket is destroyed. */
const CLOSE_GRACE_MS = 1000;

export function tlsExchange({ port, servername, data, timeoutMs }: TlsExchangeOptions): Promise<TlsExchangeResult> {
  const label = `127.0.0.1:${port} (SNI ${servername})`;
  const startedAt = performance.now();
  const age = () => performance.now() - startedAt;
  return new Promise((resolve) => {
    let received: Buffer = Buffer.alloc(0);
    let fingerprint256: string | undefined;
    let settled = false;
    // allowHalfOpen and noDelay are net.connect options that tls.connect passes on; its types omit them.
    const connectOptions: tls.ConnectionOptions & { allowHalfOpen: boolean; noDelay: boolean } = { host: '127.0.0.1', port, servername, rejectUnauthorized: false, secureContext: (clientContext ??= tls.createSecureContext()), allowHalfOpen: true, noDelay: true };
    const socket = tls.connect(connectOptions);
    const settle = (result: TlsExchangeResult) => {
      if (settled) return;
      settled = true;
      clearTimeout(timer);
      if (!result.ok || socket.destroyed) {
        socket.destroy();
        resolve(result);
        return;
      }
      // Success: end our side and wait (bounded) for the peer's close; errors now change nothing.
      const grace = setTimeout(() => socket.destroy(), CLOSE_GRACE_MS);
      socket.once('close', () => {
        clearTimeout(grace);
        resolve(result);
      });
      socket.end();
    };
    const timer = setTimeout(() => {
      const phase = fingerprint256 === undefined ? 'connecting to / in the TLS handshake with' : 'waiting for the reply from';
      const detail = received.length === 0 ? 'nothing received' : `received ${JSON.stringify(preview(received))} so far`;
      settle({ ok: false, failure: makeFailure('timeout', `timed out after ${timeoutMs} ms ${phase} ${label} (${detail})`, age()) });
    }, timeoutMs);
    socket.on('secureConnect', () => {
      fingerprint256 = socket.getPeerCertificate().fingerprint256 ?? '';
      socket.write(data);
    });
    socket.on('data', (chunk: Buffer) => {
      received = received.length === 0 ? chunk : Buffer.concat([received, chunk]);
      const verdict = replyVerdict(received, data);
      if (verdict === 'complete') settle({ ok: true, tag: replyTag(received), fingerprint256: fingerprint256 ?? '', rttMs: age() });
      else if (verdict === 'wrong') settle({ ok: false, failure: makeFailure('wrongReply', `unexpected reply from ${label}: got ${JSON.stringify(preview(received))}, expected a tagged echo of ${JSON.stringify(data.toString())}`, age()) });
    });
    const lost = () => {
      const after = `after ${formatMs(age())} ms`;
      if (received.length > 0) return makeFailure('wrongReply', `connection closed by ${label} ${after} mid-reply: got ${JSON.stringify(preview(received))}`, age());
      const where = fingerprint256 === undefined ? 'before the TLS handshake completed' : 'without a reply';
      return makeFailure('closed', `connection closed by ${label} ${after} ${where}`, age());
    };
    socket.on('end', () => settle({ ok: false, failure: lost() }));
    socket.on('close', () => settle({ ok: false, failure: lost() }));
    socket.on('error', (err) => settle({ ok: false, failure: socketFailure(err, label, age()) }));
  });
}

export interface TlsLoadOptions {
  readonly port: number;
  /** SNI names, used in turn (exchange n gets servernames[n % length]). */
  readonly servernames: readonly string[];
  readonly concurrency: number;
  /** At most this many exchanges start per second, over all workers; 0 = no cap. */
  readonly ratePerSec: number;
  /** Hard bound on the run; `signal` normally ends it first. */
  readonly durationMs: number;
  readonly timeoutMs: number;
  readonly signal: AbortSignal;
  /** Accepts a reply (undefined) or says why it is wrong. */
  readonly judge: (servername: string, reply: TlsReply) => Failure | undefined;
  readonly onError?: (failure: Failure) => void;
}

export interface TlsLoadSummary {
  /** Finished exchanges: ok + errors. */
  readonly exchanges: number;
  readonly ok: number;
  readonly errors: number;
  readonly errorsByKind: Record<FailureKind, number>;
  /** Successful exchanges per tag ("which target answered"). */
  readonly okByTag: Record<string, number>;
  readonly elapsedMs: number;
  readonly exchangesPerSec: number;
  /** Connect + handshake + exchange. */
  readonly rtt: Percentiles;
}

export async function tlsLoad(options: TlsLoadOptions): Promise<TlsLoadSummary> {
  const { port, servernames, concurrency, ratePerSec, timeoutMs, signal, judge, onError } = options;
  const data = Buffer.from('tls-ping');
  const rtt = new LatencyHistogram();
  const errorsByKind = Object.fromEntries(FAILURE_KINDS.map((kind) => [kind, 0])) as Record<FailureKind, number>;
  const okByTag: Record<string, number> = {};
  let next = 0;
  let ok = 0;
  let errors = 0;
  const startedAt = performance.now();
  const deadline = startedAt + options.durationMs;
  // Start slots ratePerSec apart; a worker waits for the next free one (a sleep of at most
  // concurrency / ratePerSec seconds, after which the loop condition is checked again).
  let nextSlot = startedAt;
  const pace = async () => {
    if (ratePerSec <= 0) return;
    const slot = Math.max(performance.now(), nextSlot);
    nextSlot = slot + 1000 / ratePerSec;
    const wait = slot - performance.now();
    if (wait > 0) await new Promise((resolve) => setTimeout(resolve, wait));
  };

  const worker = async () => {
    while (!signal.aborted && performance.now() < deadline) {
      await pace();
      if (signal.aborted) break;
      const servername = servernames[next++ % servernames.length]!;
      const result = await tlsExchange({ port, servername, data, timeoutMs });
      const failure = result.ok ? judge(servername, result) : result.failure;
      if (failure === undefined && result.ok) {
        ok++;
        okByTag[result.tag] = (okByTag[result.tag] ?? 0) + 1;
        rtt.record(result.rttMs);
      } else if (failure !== undefined) {
        errors++;
        errorsByKind[failure.kind]++;
        onError?.(failure);
      }
    }
  };
  await Promise.all(Array.from({ length: concurrency }, worker));
  const elapsedMs = performance.now() - startedAt;
  return { exchanges: ok + errors, ok, errors, errorsByKind, okByTag, elapsedMs, exchangesPerSec: ok / (elapsedMs / 1000), rtt: rtt.percentiles() };
}

function preview(buf: Buffer): string {
  const text = buf.subarray(0, 64).toString();
  return buf.length > 64 ? `${text}…` : text;
}
