// LeastConnections: the candidate with the fewest open connections per unit of weight (nginx's
// least_conn, HAProxy's leastconn). Ties go round-robin from a moving start, so equal targets
// share a burst instead of the first one taking it all. Counts are this process's (per worker).
import { lessLoaded, type PoolEntry, type Strategy } from './strategy.ts';

export class LeastConnections implements Strategy {
  readonly #entries: readonly PoolEntry[];
  #start = 0;

  constructor(entries: readonly PoolEntry[]) {
    this.#entries = entries;
  }

  pick(candidate: Uint8Array, _count: number, _key: string | undefined): number {
    const entries = this.#entries;
    const n = entries.length;
    let best = -1;
    for (let k = 0; k < n; k++) {
      const i = (this.#start + k) % n;
      if (candidate[i] !== 1) continue;
      if (best < 0 || lessLoaded(entries[i]!, entries[best]!)) best = i;
    }
    this.#start = best + 1 === n ? 0 : best + 1;
    return best;
  }
}
