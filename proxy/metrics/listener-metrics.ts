// ListenerMetrics: one listener process's counters, as plain numbers (no prom-client here: the
// daemon owns the Prometheus side). Updated at connect (one attempt count per settled attempt) and
// at close (one call per session); nothing per chunk. snapshot() is what the `metrics` IPC request
// returns (MetricsSnapshot in proxy/ipc/protocol.ts); gauges (active connections) are read from the
// listener's own state at that moment, so no counter is kept for them.
//
// Invariants: every counter only grows; snapshot() copies, so a snapshot never changes after it is
// taken; a closed session is counted exactly once (the listener calls closed() once per session).
import type { AttemptResult, DnsLookupCounts, MetricsSnapshot } from '../ipc/protocol.ts';
import { FixedHistogram } from './fixed-histogram.ts';

const RESULTS: readonly AttemptResult[] = ['ok', 'refused', 'timeout', 'unreachable', 'dns'];
const DNS_CODES = new Set(['ENOTFOUND', 'ENODATA', 'EAI_AGAIN', 'EAI_FAIL', 'EAI_NONAME']);

/** The `result` label of one settled connect attempt, from its error (null = connected). */
export function attemptResult(err: unknown): AttemptResult {
  if (err === null || err === undefined) return 'ok';
  const code = (err as { code?: unknown }).code;
  if (code === 'ECONNREFUSED') return 'refused';
  if (code === 'ETIMEDOUT') return 'timeout';
  if (typeof code === 'string' && (code.startsWith('ERR_DNS') || DNS_CODES.has(code))) return 'dns';
  return 'unreachable';
}

export interface ClosedSession {
  readonly outcome: string;
  /** Why it failed (ERR_NO_ROUTE …); undefined when it did not. */
  readonly code: string | undefined;
  readonly bytesIn: number;
  readonly bytesOut: number;
  readonly durationS: number;
  /** Time to reach a target, or -1 when no connect completed. */
  readonly connectS: number;
  /** Time to the end of the TLS handshake (inspect or terminate), or -1 when there was none. */
  readonly handshakeS: number;
}

export class ListenerMetrics {
  readonly app: string;
  readonly #outcomes = new Map<string, number>();
  readonly #failures = new Map<string, number>();
  /** target raw → counts in RESULTS order. */
  readonly #attempts = new Map<string, number[]>();
  #bytesIn = 0;
  #bytesOut = 0;
  readonly connectDuration = new FixedHistogram();
  readonly tlsHandshakeDuration = new FixedHistogram();
  readonly sessionDuration = new FixedHistogram();

  constructor(app: string) {
    this.app = app;
  }

  /** One settled connect attempt to `target` (as written in config). */
  attempt(target: string, err: unknown): void {
    this.attemptAs(target, attemptResult(err));
  }

  /** Count one settled attempt whose result the caller already knows (the connector, as the pool sees it). */
  attemptAs(target: string, result: AttemptResult): void {
    let counts = this.#attempts.get(target);
    if (counts === undefined) {
      counts = [0, 0, 0, 0, 0];
      this.#attempts.set(target, counts);
    }
    counts[RESULTS.indexOf(result)]!++;
  }

  /** One client connection ended (or was refused while draining). */
  closed(s: ClosedSession): void {
    this.#outcomes.set(s.outcome, (this.#outcomes.get(s.outcome) ?? 0) + 1);
    if (s.code !== undefined) this.#failures.set(s.code, (this.#failures.get(s.code) ?? 0) + 1);
    this.#bytesIn += s.bytesIn;
    this.#bytesOut += s.bytesOut;
    this.sessionDuration.observe(s.durationS);
    if (s.connectS >= 0) this.connectDuration.observe(s.connectS);
    if (s.handshakeS >= 0) this.tlsHandshakeDuration.observe(s.handshakeS);
  }

  snapshot(live: { activeConnections: number; targetActive: Record<string, number>; dns: DnsLookupCounts }): MetricsSnapshot {
    const attempts: Record<string, Partial<Record<AttemptResult, number>>> = {};
    for (const [target, counts] of this.#attempts) {
      const byResult: Partial<Record<AttemptResult, number>> = {};
      RESULTS.forEach((r, i) => {
        if (counts[i]! > 0) byResult[r] = counts[i]!;
      });
      attempts[target] = byResult;
    }
    return {
      app: this.app,
      activeConnections: live.activeConnections,
      connections: Object.fromEntries(this.#outcomes),
      failures: Object.fromEntries(this.#failures),
      bytesIn: this.#bytesIn,
      bytesOut: this.#bytesOut,
      attempts,
      targetActive: live.targetActive,
      connectDuration: this.connectDuration.snapshot(),
      tlsHandshakeDuration: this.tlsHandshakeDuration.snapshot(),
      sessionDuration: this.sessionDuration.snapshot(),
      dns: live.dns,
    };
  }
}
