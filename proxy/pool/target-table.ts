// TargetTable: one listener's per-target state (one TargetState per configured target, shared by
// every pool it is in) and the pools built over it. It applies the daemon's active-check states
// (`health` IPC), feeds attempt results to outlier detection, and reports one TargetReport per
// target. Policy only: no sockets, no timers; time comes from `now` (epoch ms, injectable).
//
// Invariants: a target is identified by its raw config text; states change only through
// applyHealth() and record(); onChange fires after every passive state change (ejection or
// return), onPanic on every pool's panic transition (both ways).
import type { TargetReport } from '../ipc/protocol.ts';
import type { TargetSpec } from '../spec.ts';
import { First } from './first.ts';
import { LeastConnections } from './least-connections.ts';
import { OutlierDetection, type OutlierSpec } from './outlier-detection.ts';
import { RandomTwo } from './random-two.ts';
import { RoundRobin } from './round-robin.ts';
import { SourceHash } from './source-hash.ts';
import type { PoolEntry, StrategyFactory, StrategyName, StrategyOptions } from './strategy.ts';
import { TargetPool, type PoolHost, type SlotWaiter } from './target-pool.ts';
import { TargetState, type ActiveState, type AttemptResult } from './target-state.ts';

export const STRATEGIES: Readonly<Record<StrategyName, StrategyFactory>> = {
  'round-robin': (entries) => new RoundRobin(entries),
  'least-connections': (entries) => new LeastConnections(entries),
  'random-two': (entries, opts) => new RandomTwo(entries, opts),
  'source-hash': (entries) => new SourceHash(entries),
  first: () => new First(),
};

export interface TargetTableOptions extends StrategyOptions {
  readonly strategy: StrategyName;
  /** null = passive health off. */
  readonly outlierDetection: OutlierSpec | null;
  /** Epoch ms. Default Date.now. */
  readonly now?: () => number;
  readonly onChange?: (state: TargetState) => void;
  readonly onPanic?: (pool: TargetPool) => void;
}

export class TargetTable implements PoolHost {
  readonly #states = new Map<string, TargetState>();
  readonly #pools: TargetPool[] = [];
  readonly #opts: TargetTableOptions;
  readonly #outlier: OutlierDetection;
  /** Connections waiting for a slot on a full target, oldest first (targets are shared by pools, so one list). */
  readonly #waiters: SlotWaiter[] = [];
  readonly now: () => number;

  constructor(opts: TargetTableOptions) {
    this.#opts = opts;
    this.#outlier = new OutlierDetection(opts.outlierDetection ?? null);
    this.now = opts.now ?? Date.now;
  }

  /** A pool over `targets` (each target's state shared with every other pool that lists it). */
  pool(name: string, targets: readonly TargetSpec[]): TargetPool {
    const now = this.now();
    const entries: PoolEntry[] = targets.map((spec) => {
      let state = this.#states.get(spec.raw);
      if (state === undefined) {
        state = new TargetState(spec, now);
        this.#states.set(spec.raw, state);
      }
      return { state, weight: spec.weight ?? 1, backup: spec.backup ?? false };
    });
    const members = [...new Set(entries.map((e) => e.state))];
    for (const s of members) s.memberOf.push(members);
    // A spec from an older daemon has no strategy: the default, as before strategies existed.
    const strategy = STRATEGIES[this.#opts.strategy] ?? STRATEGIES['round-robin'];
    const pool = new TargetPool(name, entries, strategy(entries, this.#opts), this);
    this.#pools.push(pool);
    return pool;
  }

  get(raw: string): TargetState | undefined {
    return this.#states.get(raw);
  }

  /**
   * Count a connection to `raw` made by another process (a handed-over session, issue 16), as a pick
   * would have: on its target's state (least-connections, MaxConnections — never refused: it is open
   * already). Returns the pool to release it on, or undefined when no pool lists the target any more.
   */
  adopt(raw: string): { pool: TargetPool; state: TargetState } | undefined {
    const state = this.#states.get(raw);
    const pool = state === undefined ? undefined : this.#pools.find((p) => p.entries.some((e) => e.state === state));
    if (state === undefined || pool === undefined) return undefined;
    state.activeConnections++;
    return { pool, state };
  }

  get states(): IterableIterator<TargetState> {
    return this.#states.values();
  }

  /** True while any pool is in panic. */
  get panic(): boolean {
    return this.#pools.some((p) => p.panic);
  }

  /** @internal PoolHost */
  record(state: TargetState, endpoint: string | undefined, result: AttemptResult, error: string | null): void {
    const why = error === null ? null : endpoint === undefined ? error : `${error} ${endpoint}`;
    if (this.#outlier.record(state, result, why, this.now())) this.#opts.onChange?.(state);
  }

  /** @internal PoolHost */
  panicChanged(pool: TargetPool): void {
    this.#opts.onPanic?.(pool);
  }

  /** @internal PoolHost: the oldest waiter that gets a slot (or gives up) leaves the queue. */
  slotFreed(): void {
    this.#wakeOne();
  }

  #wakeOne(): boolean {
    const w = this.#waiters;
    for (let i = 0; i < w.length; i++) {
      if (w[i]!.slotFreed()) {
        w.splice(i, 1);
        return true;
      }
    }
    return false;
  }

  /** @internal PoolHost */
  waitForSlot(w: SlotWaiter): void {
    this.#waiters.push(w);
  }

  /** @internal PoolHost */
  cancelWait(w: SlotWaiter): void {
    const i = this.#waiters.indexOf(w);
    if (i >= 0) this.#waiters.splice(i, 1);
  }

  /** Connections waiting for a slot (for tests and reports). */
  get waiting(): number {
    return this.#waiters.length;
  }

  /**
   * The daemon's active states (targets absent from `states` are 'unknown'). Returns the targets
   * that just went down, for OnTargetDown "close".
   */
  applyHealth(states: Readonly<Record<string, ActiveState>>): TargetState[] {
    const now = this.now();
    const wentDown: TargetState[] = [];
    for (const s of this.#states.values()) {
      const next = Object.hasOwn(states, s.raw) ? states[s.raw]! : 'unknown';
      if (next === s.active) continue;
      s.active = next;
      s.since = now;
      if (next === 'down') wentDown.push(s);
    }
    // A target back up may have room for a waiting connection.
    while (this.#waiters.length > 0 && this.#wakeOne());
    return wentDown;
  }

  /** One report per configured target, in config order (default pool first, then routes). */
  reports(): TargetReport[] {
    const now = this.now();
    return [...this.#states.values()].map((s) => ({
      target: s.raw,
      state: s.state(now),
      since: s.changedAt(now),
      lastError: s.lastError,
      activeConnections: s.activeConnections,
    }));
  }

  /** Epoch ms when the next ejection runs out, or undefined when none is ejected. */
  nextExpiry(): number | undefined {
    const now = this.now();
    let next: number | undefined;
    for (const s of this.#states.values()) if (s.ejectedUntil > now && (next === undefined || s.ejectedUntil < next)) next = s.ejectedUntil;
    return next;
  }
}
