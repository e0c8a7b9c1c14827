// HealthChecker: the active health checks of one app, run in the daemon — never in listeners — so
// each target is probed once per interval per app whatever Workers is. It keeps one entry per
// (target, check settings): the state survives rollouts and worker restarts because it lives here,
// not in any listener, and a spec change keeps the state of every target whose address and check
// settings did not change. New targets start 'unknown'; removed ones are dropped.
// Schedule: the first probe of a target at a random offset within the interval, then every
// interval ±10 %, so many apps (and targets) do not probe in lock-step.
// On each state change: one info log line {event: 'target-state', app, target, state, lastError}
// and onChange(states) with every checked target's state (the `health` IPC message's map).
// Invariants: at most one probe of an entry in flight; after stop() nothing probes or calls back.
import type { HealthStates, ListenerSpec, TargetSpec } from '../../proxy/index.ts';
import type { Logger } from '../logger.ts';
import { probeTarget } from './probe-target.ts';
import type { ProbeOptions, ProbeResult } from './probe-target.ts';
import { hostResolver } from './resolve-host.ts';
import type { ResolveHost } from './resolve-host.ts';
import { initialHealth, nextHealth } from './target-health.ts';
import type { TargetHealth } from './target-health.ts';

type HealthCheckSpec = NonNullable<ListenerSpec['healthCheck']>;

export type Probe = (host: string, port: number, options: ProbeOptions, resolveHost: ResolveHost) => Promise<ProbeResult>;

export interface HealthCheckerOptions {
  readonly app: string;
  readonly logger: Logger;
  /** Every checked target's state, called whenever one changes. */
  readonly onChange: (states: HealthStates) => void;
  readonly probe?: Probe;
  /** Default: as the listeners resolve (FPROXY_DNS_SERVERS from the process env, else the OS). */
  readonly resolveHost?: ResolveHost;
  /** [0, 1); for the jitter. */
  readonly random?: () => number;
  /** States carried over from a predecessor daemon (daemon upgrade), by entry key: no flap to unknown. */
  readonly carried?: Readonly<Record<string, TargetHealth>>;
}

/** A target's health as the daemon knows it; `checked` = active checks run for it. */
export interface ActiveTargetHealth extends TargetHealth {
  readonly checked: boolean;
}

interface Entry {
  readonly key: string;
  readonly target: TargetSpec;
  readonly check: HealthCheckSpec | null;
  health: TargetHealth;
  timer: NodeJS.Timeout | undefined;
  inFlight: boolean;
  removed: boolean;
}

/** Fraction of the interval each delay may move either way. */
const JITTER = 0.1;

/** Every target of a spec, default pool then routes, each once (by its address as written). */
export function configuredTargets(spec: ListenerSpec): TargetSpec[] {
  const seen = new Map<string, TargetSpec>();
  for (const t of [...spec.targets, ...spec.routes.flatMap((r) => r.targets)]) if (!seen.has(t.raw)) seen.set(t.raw, t);
  return [...seen.values()];
}

export class HealthChecker {
  readonly #options: HealthCheckerOptions;
  readonly #log: Logger;
  readonly #probe: Probe;
  readonly #random: () => number;
  readonly #resolveHost: ResolveHost;
  readonly #entries = new Map<string, Entry>();
  /** Target → the key of its entry under the newest tracked spec (what states() reports). */
  #latest = new Map<string, string>();
  #published = '{}';
  #stopped = false;

  constructor(options: HealthCheckerOptions) {
    this.#options = options;
    this.#log = options.logger.child({ app: options.app });
    this.#probe = options.probe ?? probeTarget;
    this.#random = options.random ?? Math.random;
    this.#resolveHost = options.resolveHost ?? hostResolver();
  }

  /**
   * Check the targets of these specs (oldest first; the newest decides a target's reported state):
   * during a rollout both the serving and the starting generation's spec, otherwise one.
   */
  track(specs: readonly ListenerSpec[]): void {
    if (this.#stopped) return;
    const wanted = new Map<string, { target: TargetSpec; check: HealthCheckSpec | null }>();
    const latest = new Map<string, string>();
    for (const spec of specs) {
      for (const target of configuredTargets(spec)) {
        const key = entryKey(target, spec.healthCheck);
        wanted.set(key, { target, check: spec.healthCheck });
        latest.set(target.raw, key);
      }
    }
    for (const [key, entry] of this.#entries) {
      if (wanted.has(key)) continue;
      entry.removed = true;
      clearTimeout(entry.timer);
      this.#entries.delete(key);
    }
    const now = Date.now();
    for (const [key, { target, check }] of wanted) {
      if (this.#entries.has(key)) continue;
      const entry: Entry = { key, target, check, health: this.#options.carried?.[key] ?? initialHealth(now), timer: undefined, inFlight: false, removed: false };
      this.#entries.set(key, entry);
      if (check !== null) this.#schedule(entry, this.#random() * check.intervalMs);
    }
    this.#latest = latest;
    this.#publish();
  }

  /** Every checked target's active state (targets without checks are absent = 'unknown'). */
  states(): HealthStates {
    const out: Record<string, 'up' | 'down' | 'unknown'> = {};
    for (const [raw, key] of this.#latest) {
      const entry = this.#entries.get(key);
      if (entry !== undefined && entry.check !== null) out[raw] = entry.health.state;
    }
    return out;
  }

  /** Every tracked entry's state by entry key (target and check settings), to carry over a daemon upgrade. */
  carry(): Record<string, TargetHealth> {
    const out: Record<string, TargetHealth> = {};
    for (const [key, entry] of this.#entries) out[key] = entry.health;
    return out;
  }

  /** The daemon's view of one target, for status; undefined when it is not tracked. */
  health(raw: string): ActiveTargetHealth | undefined {
    const key = this.#latest.get(raw);
    const entry = key === undefined ? undefined : this.#entries.get(key);
    return entry === undefined ? undefined : { ...entry.health, checked: entry.check !== null };
  }

  stop(): void {
    this.#stopped = true;
    for (const entry of this.#entries.values()) {
      entry.removed = true;
      clearTimeout(entry.timer);
    }
    this.#entries.clear();
    this.#latest.clear();
  }

  #schedule(entry: Entry, delayMs: number): void {
    entry.timer = setTimeout(() => this.#run(entry), Math.max(0, Math.round(delayMs)));
    entry.timer.unref();
  }

  #run(entry: Entry): void {
    const check = entry.check;
    if (entry.removed || check === null) return;
    this.#schedule(entry, check.intervalMs * (1 - JITTER + 2 * JITTER * this.#random()));
    // TimeoutMs ≤ IntervalMs bounds a probe, but timers drift: never two at once on one target.
    if (entry.inFlight) return;
    entry.inFlight = true;
    const port = check.port ?? entry.target.port;
    this.#probe(entry.target.host, port, check, this.#resolveHost).then(
      (result) => this.#record(entry, check, result),
      (err: unknown) => this.#record(entry, check, { ok: false, error: `probe failed: ${String(err)}` }),
    );
  }

  #record(entry: Entry, check: HealthCheckSpec, result: ProbeResult): void {
    entry.inFlight = false;
    if (entry.removed) return;
    const before = entry.health;
    entry.health = nextHealth(before, result, check.rise, check.fall, Date.now());
    if (entry.health.state === before.state) return;
    // During a rollout with changed settings a target has two entries: only the newest speaks.
    if (this.#latest.get(entry.target.raw) !== entry.key) return;
    const { state, lastError } = entry.health;
    this.#log.info({ event: 'target-state', target: entry.target.raw, state, from: before.state, lastError }, `target ${entry.target.raw} is ${state}`);
    this.#publish();
  }

  /** onChange when the reported map differs from the last one sent. */
  #publish(): void {
    const states = this.states();
    const text = JSON.stringify(states);
    if (text === this.#published) return;
    this.#published = text;
    this.#options.onChange(states);
  }
}

function entryKey(target: TargetSpec, check: HealthCheckSpec | null): string {
  return `${target.raw}\n${check === null ? 'none' : JSON.stringify(check)}`;
}
