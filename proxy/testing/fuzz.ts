// Fuzz support for the byte parsers: a seeded PRNG, one step that parses an input and a prefix of
// it (failing the test rather than throwing past it), and the check that no input is slow to parse.
import assert from 'node:assert/strict';

/** The parts, one after another, in a new array. */
export function concat(...parts: (Uint8Array | number[])[]): Uint8Array {
  const out = new Uint8Array(parts.reduce((n, p) => n + p.length, 0));
  let at = 0;
  for (const p of parts) {
    out.set(p, at);
    at += p.length;
  }
  return out;
}

/** mulberry32: small, seeded, good enough to pick fuzz mutations reproducibly. */
export function prng(seed: number): () => number {
  return () => {
    seed = (seed + 0x6d2b79f5) | 0;
    let t = Math.imul(seed ^ (seed >>> 15), 1 | seed);
    t = (t + Math.imul(t ^ (t >>> 7), 61 | t)) ^ t;
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

/** An input whose pair of calls took longer than this once is kept and timed again (assertFast). */
export const SLOW_MS = 20;

/** Past this, an input's best-of-3 time means a loop or an exponential path, not a busy machine. */
export const PATHOLOGICAL_MS = 5_000;

/**
 * No input may make a parser loop or blow up: every input that once took over SLOW_MS is timed
 * again (best of 3) and must stay under PATHOLOGICAL_MS. The bound is far above any figure a busy
 * 2-core machine produces for a linear parse (microseconds), so it only fails on a real defect;
 * the mean is returned for a diagnostic, as speed is a benchmark figure, not a pass/fail bound.
 */
export function assertFast(parse: (b: Uint8Array) => unknown, totalMs: number, pairs: number, slow: Uint8Array[]): { meanMs: number } {
  for (const input of slow) {
    let best = Infinity;
    for (let k = 0; k < 3; k++) {
      const t0 = performance.now();
      parse(input);
      parse(input.subarray(0, input.length >> 1));
      best = Math.min(best, performance.now() - t0);
    }
    assert.ok(best < PATHOLOGICAL_MS, `${best.toFixed(1)} ms at best for ${Buffer.from(input).toString('hex').slice(0, 200)}`);
  }
  return { meanMs: totalMs / pairs };
}

/** Fuzz step: parse an input and a prefix of it, failing the test (never throwing past it) if the parser throws. */
export function parseBoth<R>(parse: (b: Uint8Array) => R, whole: Uint8Array, prefix: Uint8Array, where: string): { full: R; part: R; ms: number } {
  const t0 = performance.now();
  try {
    const full = parse(whole);
    const part = parse(prefix);
    return { full, part, ms: performance.now() - t0 };
  } catch (err) {
    assert.fail(`${where}: threw ${String(err)} on ${Buffer.from(whole).toString('hex')}`);
  }
}
