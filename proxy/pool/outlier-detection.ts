// OutlierDetection: passive health from connect attempts (Envoy's consecutive_5xx for L4, HAProxy's
// `observe layer4`, nginx's max_fails). A target that fails `consecutiveFailures` attempts in a row
// is ejected for `ejectMs`, doubled on each ejection in a row up to `maxEjectMs`; when that runs
// out it gets traffic again, on probation: one trial attempt at a time (the pool marks it
// `probing`, half-open as a circuit breaker), and that attempt decides: a success returns it to up
// and resets the doubling, a failure ejects it again for twice as long. Probation is stricter than
// counting again from zero: a blackholed target costs one attempt timeout per ejection, not N.
// `maxEjectPercent` caps the share of any pool the target is in that may be ejected at once (at
// least one target may always be ejected unless it is 0).
//
// Invariants: pure (time is an argument); an ejected target's late failures (attempts started
// before the ejection) neither extend nor double it; disabled (null spec) still records the last
// error but never ejects.
import type { AttemptResult, TargetState } from './target-state.ts';

export interface OutlierSpec {
  readonly consecutiveFailures: number;
  readonly ejectMs: number;
  readonly maxEjectMs: number;
  readonly maxEjectPercent: number;
}

export class OutlierDetection {
  readonly spec: OutlierSpec | null;

  constructor(spec: OutlierSpec | null) {
    this.spec = spec;
  }

  /** Feed one attempt's result; true when the target's passive state changed (ejected, or back up). */
  record(s: TargetState, result: AttemptResult, error: string | null, now: number): boolean {
    s.probing = false;
    if (result === 'ok') {
      s.failures = 0;
      const wasEjected = s.ejectedUntil > now;
      const wasOnProbation = s.ejections > 0;
      s.ejections = 0;
      if (wasEjected) {
        // An attempt from before the ejection (or a panic pick) got through: the target is fine.
        s.ejectedUntil = now;
        s.since = now;
      }
      return wasEjected || wasOnProbation;
    }
    s.lastError = error ?? result;
    s.failures++;
    const spec = this.spec;
    if (spec === null || s.ejectedUntil > now) return false;
    const onProbation = s.ejections > 0;
    if (!onProbation && s.failures < spec.consecutiveFailures) return false;
    if (!this.#mayEject(s, now)) return false;
    const ms = Math.min(spec.ejectMs * 2 ** Math.min(s.ejections, 30), spec.maxEjectMs);
    s.ejectedUntil = now + ms;
    s.ejections++;
    s.failures = 0;
    s.since = now;
    return true;
  }

  #mayEject(s: TargetState, now: number): boolean {
    const pct = this.spec!.maxEjectPercent;
    if (pct >= 100) return true;
    if (pct <= 0) return false;
    for (const pool of s.memberOf) {
      let ejected = 0;
      for (const t of pool) if (t !== s && t.ejected(now)) ejected++;
      const cap = Math.max(1, Math.floor((pool.length * pct) / 100));
      if (ejected + 1 > cap) return false;
    }
    return true;
  }
}
