// DaemonMetrics: the daemon's side of the metrics snapshot seam (proxy/ipc/protocol.ts
// MetricsSnapshot) and the Prometheus registry behind GET /metrics, plus the short rate history
// behind GET /stats (`fproxy status`, the dashboard).
//
// A pull asks every live listener process (every worker of every generation: starting, serving,
// draining) for a fresh snapshot, waits at most pullTimeoutMs for each, and adds them to the app's
// retired totals: the final snapshot of every process that has exited (its `drained` message, or
// the last one it sent before dying), folded in once, when it exits (listenerExited). Every scrape
// (and /stats request) starts its own pull, so a connection that closed before the scrape began is
// in it; the 1 s sampler that feeds the rate history skips a beat while its last pull is out.
//
// Invariants: counters never go backwards — a process is counted either live (its reply, or its
// last known snapshot when it does not answer in time; that late answer counts in
// fproxy_scrape_errors_total) or retired, never both and never neither, and its snapshots only
// grow; a slow listener never blocks a scrape past pullTimeoutMs; what a scrape shows comes from
// a pull that started no earlier than its own (a slower, older pull never replaces a newer one).
import { Counter, Gauge, Histogram, Registry, collectDefaultMetrics } from 'prom-client';
import type { Metric } from 'prom-client';
import { DURATION_BUCKETS, logLinesDropped } from '../../proxy/index.ts';
import type { HistogramSnapshot, ListenerSpec, MetricsSnapshot } from '../../proxy/index.ts';
import type { AppStatus } from '../app-supervisor.ts';
import type { ListenerProcess } from '../listener-process.ts';
import { addSnapshots, connectionsTotal, countersOnly, emptySnapshot } from './snapshot-sum.ts';
import type { DaemonCounters } from '../upgrade/upgrade-protocol.ts';

/** What the daemon shows the metrics of: its AppSupervisors (running and retiring). */
export interface MetricsApp {
  readonly name: string;
  readonly spec: ListenerSpec | undefined;
  processes(): ListenerProcess[];
  status(): AppStatus;
}

/** What AppSupervisor reports as it works (one implementation: DaemonMetrics). */
export interface AppMetricsSink {
  listenerExited(proc: ListenerProcess): void;
  listenerRestarted(app: string): void;
  rolloutDone(app: string, generation: number, result: 'completed' | 'failed', ms: number): void;
}

export type ReloadResult = 'applied' | 'rejected' | 'unchanged';

export interface DaemonMetricsOptions {
  readonly apps: () => MetricsApp[];
  /** Per listener, per pull. Default 1000. */
  readonly pullTimeoutMs?: number;
  /** Background pull for the rate history (GET /stats). Default 1000; 0 = none. */
  readonly sampleEveryMs?: number;
}

interface Pulled {
  readonly startedAt: number;
  readonly at: number;
  readonly sums: ReadonlyMap<string, MetricsSnapshot>;
}

interface Sample {
  readonly t: number;
  readonly connections: number;
  readonly bytesIn: number;
  readonly bytesOut: number;
  readonly attempts: MetricsSnapshot['attempts'];
}

export interface RolloutRecord {
  readonly app: string;
  readonly generation: number;
  readonly result: 'completed' | 'failed';
  readonly durationMs: number;
  readonly at: string;
}

export interface TargetStats {
  readonly target: string;
  /** fproxy_target_up: false when the listener's target report says down or ejected. */
  readonly up: boolean;
  /**
   * The listener's target report state when it has one; else "failing" when its attempts since
   * the previous sample all failed, until one succeeds again; else "up".
   */
  readonly state: string;
  /** Attempts over the last 10 s. */
  readonly recent: { readonly ok: number; readonly failed: number };
  readonly activeConnections: number;
  readonly attempts: Readonly<Record<string, number>>;
}

export interface AppStats extends AppStatus {
  readonly connections: number;
  readonly outcomes: Readonly<Record<string, number>>;
  readonly failures: Readonly<Record<string, number>>;
  readonly bytesIn: number;
  readonly bytesOut: number;
  /** Rates over the last 10 s (less just after start). */
  readonly connPerSec: number;
  readonly bytesInPerSec: number;
  readonly bytesOutPerSec: number;
  readonly targetsUp: number;
  readonly targetsTotal: number;
  readonly targetStats: TargetStats[];
  /** One point per sample (1 s apart), oldest first: rates over the interval before `t` (epoch ms). */
  readonly history: { t: number; connPerSec: number; bytesInPerSec: number; bytesOutPerSec: number }[];
}

const HISTORY = 120;
/** The daemon's own series has no label (as its other daemon-level counters); each app's is labelled app. */
const LOG_LINES_DROPPED = 'fproxy_log_lines_dropped_total';
const RATE_WINDOW_MS = 10_000;

/** How often the event-loop lag metrics sample (prom-client's default is 10 ms). */
const EVENT_LOOP_SAMPLE_MS = 100;

export class DaemonMetrics implements AppMetricsSink {
  readonly registry = new Registry();
  readonly #apps: () => MetricsApp[];
  readonly #pullTimeoutMs: number;
  readonly #retired = new Map<string, MetricsSnapshot>();
  readonly #carried = new Map<string, MetricsSnapshot>();
  readonly #history = new Map<string, Sample[]>();
  readonly #rollouts: RolloutRecord[] = [];
  /** app → targets whose latest attempts all failed (no report from the listener needed). */
  readonly #failing = new Map<string, Set<string>>();
  #latest: Pulled = { startedAt: 0, at: 0, sums: new Map() };
  #sampling = false;
  /** A predecessor daemon's own dropped log lines (upgrade). */
  #carriedLogLinesDropped = 0;
  #sampler: NodeJS.Timeout | undefined;
  readonly #scrapeErrors: Counter;
  readonly #reloads: Counter<'result'>;
  readonly #lastReloadSuccess: Gauge;
  readonly #rolloutsTotal: Counter<'app' | 'result'>;
  readonly #rolloutDuration: Histogram;
  readonly #restarts: Counter<'app'>;

  constructor(options: DaemonMetricsOptions) {
    this.#apps = options.apps;
    this.#pullTimeoutMs = options.pullTimeoutMs ?? 1000;
    const registers = [this.registry];
    // prom-client samples event-loop lag every 10 ms by default: 100 wake-ups a second in a daemon
    // that is otherwise idle (strace: epoll_pwait with a 10 ms timeout, ~0.8 % of a core). Lag that
    // matters to a proxy's control plane is far above 100 ms anyway.
    collectDefaultMetrics({ register: this.registry, eventLoopMonitoringPrecision: EVENT_LOOP_SAMPLE_MS });
    this.#scrapeErrors = new Counter({ name: 'fproxy_scrape_errors_total', help: 'Listener processes that did not answer a metrics pull within the timeout (their last known figures were used).', registers });
    this.#reloads = new Counter({ name: 'fproxy_config_reloads_total', help: 'Config reads by result: applied, rejected (invalid; the last good config keeps running), unchanged (same content).', labelNames: ['result'], registers });
    for (const result of ['applied', 'rejected', 'unchanged']) this.#reloads.inc({ result }, 0);
    this.#lastReloadSuccess = new Gauge({ name: 'fproxy_config_last_reload_success_timestamp_seconds', help: 'When a config was last applied with every app serving it (epoch seconds).', registers });
    this.#rolloutsTotal = new Counter({ name: 'fproxy_rollouts_total', help: 'Generation replacements by app and result: completed (the new generation serves), failed (the old one kept serving).', labelNames: ['app', 'result'], registers });
    this.#rolloutDuration = new Histogram({ name: 'fproxy_rollout_duration_seconds', help: 'From forking a new generation to all its workers ready.', buckets: [0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60], registers });
    this.#restarts = new Counter({ name: 'fproxy_listener_restarts_total', help: 'Listener processes restarted after a crash or a hang.', labelNames: ['app'], registers });
    const apps = this.#apps;
    new Gauge({
      name: 'fproxy_app_generation', help: 'The generation serving each app.', labelNames: ['app'], registers,
      collect() {
        this.reset();
        for (const a of apps()) this.set({ app: a.name }, a.status().generation);
      },
    });
    this.#registerListenerMetrics();
    const every = options.sampleEveryMs ?? 1000;
    if (every > 0) {
      this.#sampler = setInterval(() => {
        if (this.#sampling) return;
        this.#sampling = true;
        void this.pull().finally(() => (this.#sampling = false));
      }, every);
      this.#sampler.unref();
    }
  }

  close(): void {
    clearInterval(this.#sampler);
  }

  /**
   * A predecessor daemon's totals (daemon upgrade), per app: counted under ours so counters never
   * go backwards. Each call replaces the previous one (the predecessor sends its totals at hand-over
   * and again, final, once its listeners have exited; its totals only grow).
   */
  carryOver(totals: readonly MetricsSnapshot[]): void {
    this.#carried.clear();
    for (const s of totals) this.#carried.set(s.app, countersOnly(s));
  }

  /** Every app's counters now (retired + live + carried), for a successor daemon. */
  async totals(): Promise<MetricsSnapshot[]> {
    const pulled = await this.pull();
    return [...pulled.sums.values()].map(countersOnly);
  }

  // ---- AppMetricsSink ----

  listenerExited(proc: ListenerProcess): void {
    const last = proc.lastSnapshot;
    if (last === undefined) return;
    const app = proc.spec.app;
    this.#retired.set(app, addSnapshots(this.#retired.get(app) ?? emptySnapshot(app), countersOnly(last)));
  }

  listenerRestarted(app: string): void {
    this.#restarts.inc({ app });
  }

  rolloutDone(app: string, generation: number, result: 'completed' | 'failed', ms: number): void {
    this.#rolloutsTotal.inc({ app, result });
    if (result === 'completed') this.#rolloutDuration.observe(ms / 1000);
    this.#rollouts.push({ app, generation, result, durationMs: ms, at: new Date().toISOString() });
    if (this.#rollouts.length > 20) this.#rollouts.shift();
  }

  /** The daemon's own counters (reloads, rollouts, restarts, its dropped log lines), for a successor daemon (upgrade). */
  async counters(): Promise<DaemonCounters> {
    const out: Record<string, { labels: Record<string, string | number>; value: number }[]> = {};
    for (const c of [this.#reloads, this.#rolloutsTotal, this.#restarts] as Counter<string>[]) {
      const got = await c.get();
      out[got.name] = got.values.map((v) => ({ labels: { ...v.labels } as Record<string, string | number>, value: v.value }));
    }
    out[LOG_LINES_DROPPED] = [{ labels: {}, value: this.#ownLogLinesDropped() }];
    return out;
  }

  /**
   * A predecessor daemon's counters (upgrade): added to ours, so they go on from where it was
   * (Envoy carries stats over a hot restart). Names this version does not have are left out.
   */
  carryCounters(counters: DaemonCounters): void {
    const byName = new Map<string, Counter<string>>([this.#reloads, this.#rolloutsTotal, this.#restarts].map((c) => [(c as unknown as { name: string }).name, c as Counter<string>]));
    for (const [name, values] of Object.entries(counters)) {
      if (name === LOG_LINES_DROPPED) {
        for (const { value } of values) if (Number.isFinite(value) && value > 0) this.#carriedLogLinesDropped += value;
        continue;
      }
      const c = byName.get(name);
      if (c === undefined) continue;
      for (const { labels, value } of values) if (Number.isFinite(value) && value > 0) c.inc(labels, value);
    }
  }

  /**
   * GET /status logLinesDropped: the daemon's own plus every listener's (retired ones included), as
   * of the latest pull (at most ~1 s old: /status never waits on a listener).
   */
  logLinesDropped(): number {
    let n = this.#ownLogLinesDropped();
    for (const s of this.#latest.sums.values()) n += s.logLinesDropped ?? 0;
    return n;
  }

  /** This process's dropped lines read live from its writer (proxy/log.ts), plus a predecessor's. */
  #ownLogLinesDropped(): number {
    return this.#carriedLogLinesDropped + logLinesDropped();
  }

  reload(result: ReloadResult, fullyApplied = false): void {
    this.#reloads.inc({ result });
    if (fullyApplied) this.#lastReloadSuccess.set(Date.now() / 1000);
  }

  // ---- pulls ----

  /** Fresh figures from every live listener, added to the retired totals, per app. */
  async pull(): Promise<Pulled> {
    const startedAt = performance.now();
    const procs = this.#apps().flatMap((a) => a.processes().map((p) => ({ app: a.name, p })));
    const replies = await Promise.all(procs.map(({ p }) => p.requestMetrics(this.#pullTimeoutMs)));
    // From here on nothing awaits: the live/retired split below is one consistent moment.
    const sums = new Map<string, MetricsSnapshot>(this.#retired);
    for (const [app, s] of this.#carried) sums.set(app, addSnapshots(sums.get(app) ?? emptySnapshot(app), s));
    procs.forEach(({ app, p }, i) => {
      if (p.state === 'exited') return; // its final snapshot is in #retired already
      let s = replies[i];
      if (s === undefined) {
        // A process still starting has nothing to say yet; one that sent its final counts is exiting.
        if (p.state !== 'starting' && !p.finalSnapshot) this.#scrapeErrors.inc();
        s = p.lastSnapshot;
      }
      if (s !== undefined) sums.set(app, addSnapshots(sums.get(app) ?? emptySnapshot(app), s));
    });
    const pulled = { startedAt, at: Date.now(), sums };
    if (startedAt < this.#latest.startedAt) return this.#latest; // a newer pull finished first
    this.#latest = pulled;
    this.#record(pulled);
    return pulled;
  }

  #record(p: Pulled): void {
    for (const [app, s] of p.sums) {
      let h = this.#history.get(app);
      if (h === undefined) this.#history.set(app, (h = []));
      const prev = h.at(-1)?.attempts;
      let failing = this.#failing.get(app);
      if (failing === undefined) this.#failing.set(app, (failing = new Set()));
      for (const [target, byResult] of Object.entries(s.attempts)) {
        let ok = 0;
        let failed = 0;
        for (const [k, v] of Object.entries(byResult)) {
          const delta = (v ?? 0) - ((prev?.[target] as Record<string, number> | undefined)?.[k] ?? 0);
          if (k === 'ok') ok += delta;
          else failed += delta;
        }
        if (ok > 0) failing.delete(target);
        else if (failed > 0) failing.add(target);
      }
      h.push({ t: p.at, connections: connectionsTotal(s), bytesIn: s.bytesIn, bytesOut: s.bytesOut, attempts: s.attempts });
      if (h.length > HISTORY) h.shift();
    }
  }

  /** Prometheus text format, after a fresh pull. */
  async render(): Promise<string> {
    await this.pull();
    return this.registry.metrics();
  }

  get contentType(): string {
    return this.registry.contentType;
  }

  /** GET /stats: per app status, totals, rates, targets, history; the last rollouts. After a fresh pull. */
  async stats(apps: AppStatus[]): Promise<{ at: string; apps: AppStats[]; rollouts: RolloutRecord[] }> {
    const pulled = await this.pull();
    const specs = new Map(this.#apps().map((a) => [a.name, a.spec]));
    return {
      at: new Date(pulled.at).toISOString(),
      apps: apps.map((a) => this.#appStats(a, specs.get(a.name), pulled.sums.get(a.name) ?? emptySnapshot(a.name))),
      rollouts: [...this.#rollouts].reverse(),
    };
  }

  #appStats(status: AppStatus, spec: ListenerSpec | undefined, s: MetricsSnapshot): AppStats {
    const h = this.#history.get(status.name) ?? [];
    const history: AppStats['history'] = [];
    for (let i = 1; i < h.length; i++) history.push(rates(h[i - 1]!, h[i]!));
    const last = h.at(-1);
    const windowStart = last === undefined ? undefined : (h.find((x) => x.t >= last.t - RATE_WINDOW_MS) ?? last);
    const r = last !== undefined && windowStart !== undefined && windowStart !== last ? rates(windowStart, last) : { connPerSec: 0, bytesInPerSec: 0, bytesOutPerSec: 0 };
    const failing = this.#failing.get(status.name);
    const targets = targetsOf(spec).map((target) => targetStats(target, s, windowStart?.attempts, failing?.has(target) ?? false));
    return {
      ...status,
      connections: connectionsTotal(s), outcomes: s.connections, failures: s.failures, bytesIn: s.bytesIn, bytesOut: s.bytesOut,
      connPerSec: r.connPerSec, bytesInPerSec: r.bytesInPerSec, bytesOutPerSec: r.bytesOutPerSec,
      // For people, a target whose attempts keep failing is not up, whatever the pool thinks yet.
      targetsUp: targets.filter((t) => t.up && t.state !== 'failing').length, targetsTotal: targets.length, targetStats: targets, history,
    };
  }

  // ---- the listener-side metrics, as custom collectors over the latest pull ----

  #registerListenerMetrics(): void {
    const sums = (): [string, MetricsSnapshot][] => [...this.#latest.sums];
    const specs = (): Map<string, ListenerSpec | undefined> => new Map(this.#apps().map((a) => [a.name, a.spec]));
    this.#custom('fproxy_connections_total', 'Client connections closed, by session outcome (ok, connect-failed, no-route, handshake-timeout, bad-handshake, client-error, upstream-error, idle-timeout, drained).', 'counter', () =>
      sums().flatMap(([app, s]) => Object.entries(s.connections).map(([outcome, value]) => ({ labels: { app, outcome }, value }))));
    this.#custom('fproxy_connection_failures_total', 'Failed client connections by reason code (ERR_NO_ROUTE, ERR_CONNECT_EXHAUSTED, ERR_TLS_HANDSHAKE, ...).', 'counter', () =>
      sums().flatMap(([app, s]) => Object.entries(s.failures).map(([code, value]) => ({ labels: { app, code }, value }))));
    this.#custom('fproxy_active_connections', 'Client connections open now, over every worker and generation.', 'gauge', () =>
      sums().map(([app, s]) => ({ labels: { app }, value: s.activeConnections })));
    this.#custom('fproxy_connect_attempts_total', 'Connect attempts to targets by result (ok, refused, timeout, unreachable, dns).', 'counter', () =>
      sums().flatMap(([app, s]) => Object.entries(s.attempts).flatMap(([target, byResult]) => Object.entries(byResult).map(([result, value]) => ({ labels: { app, target, result }, value: value ?? 0 })))));
    this.#custom('fproxy_target_up', 'Whether a target takes new connections (1) or not (0: down or ejected).', 'gauge', () => {
      const sp = specs();
      return sums().flatMap(([app, s]) => targetsOf(sp.get(app)).map((target) => ({ labels: { app, target }, value: targetStats(target, s).up ? 1 : 0 })));
    });
    this.#custom('fproxy_target_active_connections', 'Upstream connections open now per target.', 'gauge', () => {
      const sp = specs();
      return sums().flatMap(([app, s]) => {
        const targets = new Set([...targetsOf(sp.get(app)), ...Object.keys(s.targetActive)]);
        return [...targets].map((target) => ({ labels: { app, target }, value: s.targetActive[target] ?? 0 }));
      });
    });
    this.#custom('fproxy_bytes_total', 'Bytes of closed connections on the client side: in = from clients, out = to clients.', 'counter', () =>
      sums().flatMap(([app, s]) => [{ labels: { app, direction: 'in' }, value: s.bytesIn }, { labels: { app, direction: 'out' }, value: s.bytesOut }]));
    const histogram = (name: string, help: string, pick: (s: MetricsSnapshot) => HistogramSnapshot): void =>
      this.#custom(name, help, 'histogram', () => sums().flatMap(([app, s]) => histogramValues(name, app, pick(s))));
    histogram('fproxy_connect_duration_seconds', 'From starting to connect (retries included) to the upstream connection being up.', (s) => s.connectDuration);
    histogram('fproxy_tls_handshake_duration_seconds', 'From accept to the ClientHello read (passthrough) or the handshake done (terminate).', (s) => s.tlsHandshakeDuration);
    histogram('fproxy_session_duration_seconds', 'From accept to close, per client connection.', (s) => s.sessionDuration);
    this.#custom('fproxy_dns_lookups_total', 'DNS cache answers: hit (fresh), miss (a query sent), stale (past TTL), error (a failed query).', 'counter', () => {
      const total = { hit: 0, miss: 0, stale: 0, error: 0 };
      for (const [, s] of sums()) for (const k of ['hit', 'miss', 'stale', 'error'] as const) total[k] += s.dns[k];
      return Object.entries(total).map(([result, value]) => ({ labels: { result }, value }));
    });
    this.#custom(LOG_LINES_DROPPED, 'Log lines dropped because stdout was full (over 1 s) or broken: the daemon\'s own (no label) and each app\'s listeners (app).', 'counter', () => [
      { labels: {}, value: this.#ownLogLinesDropped() },
      ...sums().map(([app, s]) => ({ labels: { app }, value: s.logLinesDropped ?? 0 })),
    ]);
  }

  #custom(name: string, help: string, type: 'counter' | 'gauge' | 'histogram', values: () => { metricName?: string; labels: Record<string, string | number>; value: number }[]): void {
    const metric = {
      name, help, type, aggregator: 'sum',
      get: async () => ({ name, help, type, aggregator: 'sum', values: values() }),
      reset: () => {},
    };
    this.registry.registerMetric(metric as unknown as Metric);
  }
}

function rates(a: Sample, b: Sample): { t: number; connPerSec: number; bytesInPerSec: number; bytesOutPerSec: number } {
  const dt = Math.max(1, b.t - a.t) / 1000;
  const r = (x: number, y: number) => Math.max(0, Math.round(((y - x) / dt) * 100) / 100);
  return { t: b.t, connPerSec: r(a.connections, b.connections), bytesInPerSec: r(a.bytesIn, b.bytesIn), bytesOutPerSec: r(a.bytesOut, b.bytesOut) };
}

/** Every configured target of an app once: the default pool, then the routes' pools. */
function targetsOf(spec: ListenerSpec | undefined): string[] {
  if (spec === undefined) return [];
  const all = new Set<string>();
  for (const t of spec.targets) all.add(t.raw);
  for (const r of spec.routes) for (const t of r.targets) all.add(t.raw);
  return [...all];
}

function targetStats(target: string, s: MetricsSnapshot, before?: MetricsSnapshot['attempts'], failing = false): TargetStats {
  // contracts.md TargetReport.state: a target the listener reports down or ejected takes no new connections.
  const reported = s.targets?.find((r) => r.target === target)?.state;
  const attempts: Record<string, number> = {};
  let ok = 0;
  let failed = 0;
  for (const [k, v] of Object.entries(s.attempts[target] ?? {})) {
    attempts[k] = v ?? 0;
    const delta = (v ?? 0) - (before?.[target]?.[k as keyof (typeof before)[string]] ?? 0);
    if (k === 'ok') ok += delta;
    else failed += delta;
  }
  // A state that keeps new connections away wins; else attempts that keep failing (for people);
  // else what the listener reports (up, or unknown while active checks have not decided).
  const away = reported === 'down' || reported === 'ejected' || reported === 'drain';
  const state = away ? reported : failing ? 'failing' : (reported ?? 'up');
  const up = !away;
  return { target, up, state, recent: { ok, failed }, activeConnections: s.targetActive[target] ?? 0, attempts };
}

function histogramValues(name: string, app: string, h: HistogramSnapshot): { metricName: string; labels: Record<string, string | number>; value: number }[] {
  const out: { metricName: string; labels: Record<string, string | number>; value: number }[] = [];
  let cumulative = 0;
  DURATION_BUCKETS.forEach((le, i) => {
    cumulative += h.counts[i] ?? 0;
    out.push({ metricName: `${name}_bucket`, labels: { app, le }, value: cumulative });
  });
  cumulative += h.counts[DURATION_BUCKETS.length] ?? 0;
  out.push({ metricName: `${name}_bucket`, labels: { app, le: '+Inf' }, value: cumulative });
  out.push({ metricName: `${name}_sum`, labels: { app }, value: h.sum });
  out.push({ metricName: `${name}_count`, labels: { app }, value: cumulative });
  return out;
}
