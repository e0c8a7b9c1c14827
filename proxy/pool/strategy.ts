// Strategy: how a pool chooses among its candidate targets. One implementation per file
// (round-robin.ts, least-connections.ts, random-two.ts, source-hash.ts, first.ts); all run through
// the shared conformance suite pool.case.ts. The pool decides which targets are candidates (health,
// backup, already tried); a strategy only chooses among them.
//
// Invariants: pick() is called with at least one candidate and returns the index of a candidate;
// it allocates nothing and does no I/O (it runs once per connect attempt).
import type { StrategySpec } from '../spec.ts';
import type { TargetState } from './target-state.ts';

export interface PoolEntry {
  readonly state: TargetState;
  /** Relative share of new connections, ≥ 1. */
  readonly weight: number;
  /** Gets connections only when no primary target is usable. */
  readonly backup: boolean;
}

export interface Strategy {
  /**
   * Index of the chosen entry. `candidate[i] === 1` marks the entries it may choose (`count` of
   * them, at least one); `key` is the client's address (for hashing strategies).
   */
  pick(candidate: Uint8Array, count: number, key: string | undefined): number;
}

export type StrategyName = StrategySpec;

export interface StrategyOptions {
  /** Uniform in [0, 1). Default Math.random; tests pass a seeded one. */
  readonly random?: () => number;
}

export type StrategyFactory = (entries: readonly PoolEntry[], opts: StrategyOptions) => Strategy;

/** Fewer connections per unit of weight: a.conns / a.weight < b.conns / b.weight, without division. */
export function lessLoaded(a: PoolEntry, b: PoolEntry): boolean {
  return a.state.activeConnections * b.weight < b.state.activeConnections * a.weight;
}
