// SourceHash: consistent hashing of the client address on a ring with virtual nodes (ketama, as
// HAProxy's `hash-type consistent` and nginx's `hash … consistent`). Each target owns
// POINTS_PER_WEIGHT × Weight points on a 32-bit ring; a client goes to the owner of the first point
// at or after its hash that is a candidate. So a client keeps its target while that target is
// usable; when a target leaves (removed, ejected, down) only its own clients move, spread over the
// rest, and they come back when it returns. Removing 1 of 10 targets moves about a tenth.
//
// Invariants: the ring is built once per pool; pick() hashes the key (no allocation) and binary
// searches; the walk past non-candidates ends because at least one candidate owns points.
import type { PoolEntry, Strategy } from './strategy.ts';

const POINTS_PER_WEIGHT = 100;

export class SourceHash implements Strategy {
  /** Point hashes, ascending. */
  readonly #ring: Uint32Array;
  /** Entry index owning each point. */
  readonly #owner: Uint32Array;

  constructor(entries: readonly PoolEntry[]) {
    const points: { hash: number; owner: number }[] = [];
    entries.forEach((e, owner) => {
      for (let k = 0; k < POINTS_PER_WEIGHT * e.weight; k++) points.push({ hash: hashString(`${e.state.raw}#${k}`), owner });
    });
    // Equal hashes (rare) are ordered by owner so the ring does not depend on config order.
    points.sort((a, b) => a.hash - b.hash || a.owner - b.owner);
    this.#ring = Uint32Array.from(points, (p) => p.hash);
    this.#owner = Uint32Array.from(points, (p) => p.owner);
  }

  pick(candidate: Uint8Array, _count: number, key: string | undefined): number {
    const ring = this.#ring;
    const owner = this.#owner;
    const n = ring.length;
    const h = key === undefined ? 0 : hashString(key);
    let lo = 0;
    let hi = n;
    while (lo < hi) {
      const mid = (lo + hi) >>> 1;
      if (ring[mid]! < h) lo = mid + 1;
      else hi = mid;
    }
    for (let k = 0; k < n; k++) {
      const i = owner[(lo + k) % n]!;
      if (candidate[i] === 1) return i;
    }
    return candidate.indexOf(1);
  }
}

/** FNV-1a over UTF-16 code units, then murmur3's finalizer to spread nearby inputs. Unsigned 32-bit. */
export function hashString(s: string): number {
  let h = 0x811c9dc5;
  for (let i = 0; i < s.length; i++) {
    h ^= s.charCodeAt(i);
    h = Math.imul(h, 0x01000193);
  }
  h ^= h >>> 16;
  h = Math.imul(h, 0x85ebca6b);
  h ^= h >>> 13;
  h = Math.imul(h, 0xc2b2ae35);
  h ^= h >>> 16;
  return h >>> 0;
}
