// TargetState: everything one listener process knows about one configured target, shared by every
// pool the target is in (the app's default pool and route pools): the daemon's active-check state,
// the passive (outlier) state, open connections, the last error. Identity is `raw`, the target as
// written in config.
//
// Invariants: plain data with no I/O and no timers; time comes from the caller (epoch ms), so the
// state is a pure function of the reports fed to it; usable() is a few field reads (hot path).
import type { TargetSpec } from '../spec.ts';

/** The daemon's view from active checks (and operator drain); absent = 'unknown'. */
export type ActiveState = 'up' | 'down' | 'unknown' | 'drain';

/** What a listener reports per target: the active state, or 'ejected' by passive health. */
export type ReportedState = 'up' | 'down' | 'ejected' | 'drain' | 'unknown';

/** How one connect attempt to a target ended. */
export type AttemptResult = 'ok' | 'refused' | 'unreachable' | 'timeout' | 'dns';

export class TargetState {
  readonly spec: TargetSpec;
  readonly raw: string;
  active: ActiveState = 'unknown';
  /** Sessions connected or connecting to this target in this process. */
  activeConnections = 0;
  /** The target's MaxConnections in this process; 0 = no limit. */
  readonly maxConnections: number;
  /** Failed attempts in a row (passive health). */
  failures = 0;
  /** Ejections in a row with no success between them: the ejection time doubles with each. */
  ejections = 0;
  /** Epoch ms until which the target is ejected; 0 = never ejected. */
  ejectedUntil = 0;
  /** Back from an ejection with its one trial attempt in flight: no other connection until it ends. */
  probing = false;
  lastError: string | null = null;
  /** Epoch ms of the last change of the reported state (passive or active). */
  since: number;
  /** The targets of every pool this one is in (for MaxEjectPercent). */
  readonly memberOf: (readonly TargetState[])[] = [];

  constructor(spec: TargetSpec, now: number) {
    this.spec = spec;
    this.raw = spec.raw;
    this.maxConnections = spec.maxConnections ?? 0;
    this.since = now;
  }

  /** May get new connections: not down or drained by the daemon, not ejected, not being probed. */
  usable(now: number): boolean {
    return this.active !== 'down' && this.active !== 'drain' && now >= this.ejectedUntil && !this.probing;
  }

  /** At its MaxConnections: no new connection until one of its own ends. */
  full(): boolean {
    return this.maxConnections !== 0 && this.activeConnections >= this.maxConnections;
  }

  ejected(now: number): boolean {
    return now < this.ejectedUntil;
  }

  state(now: number): ReportedState {
    if (this.active === 'down' || this.active === 'drain') return this.active;
    return now < this.ejectedUntil ? 'ejected' : this.active;
  }

  /** When the reported state last changed; an ejection that ran out changed it at its end. */
  changedAt(now: number): number {
    return this.ejectedUntil > this.since && this.ejectedUntil <= now && this.active !== 'down' && this.active !== 'drain'
      ? this.ejectedUntil
      : this.since;
  }
}
