// Adding metrics snapshots (proxy/ipc/protocol.ts MetricsSnapshot) of many listener processes:
// the workers of a generation, the generations of an app, and the retired processes' final counts.
// Pure: plain objects in, a new object out; nothing is mutated.
import type { HistogramSnapshot, MetricsSnapshot } from '../../proxy/index.ts';
import { emptyHistogram } from '../../proxy/index.ts';

export function emptySnapshot(app: string): MetricsSnapshot {
  return {
    app, activeConnections: 0, connections: {}, failures: {}, bytesIn: 0, bytesOut: 0, attempts: {}, targetActive: {},
    connectDuration: emptyHistogram(), tlsHandshakeDuration: emptyHistogram(), sessionDuration: emptyHistogram(),
    dns: { hit: 0, miss: 0, stale: 0, error: 0 }, logLinesDropped: 0,
  };
}

function addRecords<K extends string>(a: Readonly<Partial<Record<K, number>>>, b: Readonly<Partial<Record<K, number>>>): Partial<Record<K, number>> {
  const out: Partial<Record<K, number>> = { ...a };
  for (const k of Object.keys(b) as K[]) out[k] = (out[k] ?? 0) + (b[k] ?? 0);
  return out;
}

function addHistograms(a: HistogramSnapshot, b: HistogramSnapshot): HistogramSnapshot {
  // Same bucket layout on both sides (one DURATION_BUCKETS for every process); a mismatch would be
  // a listener from another build: keep what we have rather than mix incompatible buckets.
  if (a.counts.length !== b.counts.length) return a;
  return { counts: a.counts.map((n, i) => n + b.counts[i]!), sum: a.sum + b.sum };
}

type TargetStates = NonNullable<MetricsSnapshot['targets']>;

// Which state wins when workers disagree, as /apps decides (daemon/health/target-status.ts): the
// daemon's own down/drain first (every worker has it), then a passive ejection in any worker.
const STATE_RANK: Readonly<Record<string, number>> = { down: 4, drain: 3, ejected: 2, unknown: 1, up: 0 };

/** Per target, the state that keeps connections away in any of the two; targets of either. */
function mergeTargets(a: TargetStates | undefined, b: TargetStates | undefined): TargetStates | undefined {
  if (a === undefined || b === undefined) return b ?? a;
  const byTarget = new Map(a.map((r) => [r.target, r]));
  for (const r of b) {
    const had = byTarget.get(r.target);
    if (had === undefined || (STATE_RANK[r.state] ?? 0) > (STATE_RANK[had.state] ?? 0)) byTarget.set(r.target, r);
  }
  return [...byTarget.values()];
}

/** a + b. Per-target states merge: a target any process keeps connections away from is shown so. */
export function addSnapshots(a: MetricsSnapshot, b: MetricsSnapshot): MetricsSnapshot {
  const attempts: Record<string, Partial<Record<string, number>>> = { ...a.attempts };
  for (const [target, counts] of Object.entries(b.attempts)) attempts[target] = addRecords(attempts[target] ?? {}, counts);
  const targets = mergeTargets(a.targets, b.targets);
  return {
    app: a.app,
    activeConnections: a.activeConnections + b.activeConnections,
    connections: addRecords(a.connections, b.connections) as Record<string, number>,
    failures: addRecords(a.failures, b.failures) as Record<string, number>,
    bytesIn: a.bytesIn + b.bytesIn,
    bytesOut: a.bytesOut + b.bytesOut,
    attempts,
    targetActive: addRecords(a.targetActive, b.targetActive) as Record<string, number>,
    connectDuration: addHistograms(a.connectDuration, b.connectDuration),
    tlsHandshakeDuration: addHistograms(a.tlsHandshakeDuration, b.tlsHandshakeDuration),
    sessionDuration: addHistograms(a.sessionDuration, b.sessionDuration),
    dns: { hit: a.dns.hit + b.dns.hit, miss: a.dns.miss + b.dns.miss, stale: a.dns.stale + b.dns.stale, error: a.dns.error + b.dns.error },
    logLinesDropped: (a.logLinesDropped ?? 0) + (b.logLinesDropped ?? 0),
    ...(targets !== undefined ? { targets } : {}),
  };
}

/** A retired process's counters without its gauges: what is folded into an app's retired totals. */
export function countersOnly(s: MetricsSnapshot): MetricsSnapshot {
  const { targets: _targets, ...rest } = s;
  return { ...rest, activeConnections: 0, targetActive: {} };
}

/** Closed connections, all outcomes. */
export function connectionsTotal(s: MetricsSnapshot): number {
  let n = 0;
  for (const v of Object.values(s.connections)) n += v;
  return n;
}
