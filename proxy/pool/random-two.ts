// RandomTwo: the power of two random choices (Mitzenmacher; Envoy's LEAST_REQUEST, HAProxy's
// `random(2)`): draw two distinct candidates, weighted by Weight, and take the one with fewer open
// connections per unit of weight. Nearly as even as least-connections without its herd behaviour
// when several workers each see only their own counts.
import { lessLoaded, type PoolEntry, type Strategy, type StrategyOptions } from './strategy.ts';

export class RandomTwo implements Strategy {
  readonly #entries: readonly PoolEntry[];
  readonly #random: () => number;

  constructor(entries: readonly PoolEntry[], opts: StrategyOptions = {}) {
    this.#entries = entries;
    this.#random = opts.random ?? Math.random;
  }

  pick(candidate: Uint8Array, count: number, _key: string | undefined): number {
    const a = this.#draw(candidate, -1);
    if (count === 1) return a;
    const b = this.#draw(candidate, a);
    const entries = this.#entries;
    return lessLoaded(entries[b]!, entries[a]!) ? b : a;
  }

  /** A candidate other than `skip`, with probability proportional to its weight. */
  #draw(candidate: Uint8Array, skip: number): number {
    const entries = this.#entries;
    let total = 0;
    for (let i = 0; i < entries.length; i++) if (candidate[i] === 1 && i !== skip) total += entries[i]!.weight;
    let r = this.#random() * total;
    let last = -1;
    for (let i = 0; i < entries.length; i++) {
      if (candidate[i] !== 1 || i === skip) continue;
      last = i;
      r -= entries[i]!.weight;
      if (r < 0) return i;
    }
    return last;
  }
}
