// RoundRobin: smooth weighted round-robin, as nginx's upstream module: each pick adds every
// candidate's weight to its running score, chooses the highest score and takes the candidates'
// total weight off it. Weights 5,1,1 give a a b a c a a: the heavy target's turns are spread out,
// not bunched. Equal weights give plain rotation in order. Non-candidates keep their score, so a
// target back from an ejection rejoins the rotation without a burst.
import type { PoolEntry, Strategy } from './strategy.ts';

export class RoundRobin implements Strategy {
  readonly #entries: readonly PoolEntry[];
  readonly #score: Float64Array;

  constructor(entries: readonly PoolEntry[]) {
    this.#entries = entries;
    this.#score = new Float64Array(entries.length);
  }

  pick(candidate: Uint8Array, _count: number, _key: string | undefined): number {
    const entries = this.#entries;
    const score = this.#score;
    let best = -1;
    let total = 0;
    for (let i = 0; i < entries.length; i++) {
      if (candidate[i] !== 1) continue;
      const w = entries[i]!.weight;
      score[i]! += w;
      total += w;
      if (best < 0 || score[i]! > score[best]!) best = i;
    }
    score[best]! -= total;
    return best;
  }
}
