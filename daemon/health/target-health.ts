// TargetHealth: the Rise/Fall state machine of one target's active checks. Pure: a state and a
// probe result in, the next state out.
//   unknown → up   after `rise` successes in a row; unknown → down after `fall` failures in a row
//   up      → down after `fall` failures in a row;   down    → up   after `rise` successes in a row
// Invariants: a success resets the failure run and a failure the success run; `since` changes only
// with `state`; lastError is the latest failure's text, cleared when the target comes up.
import type { ProbeResult } from './probe-target.ts';

export type CheckedState = 'unknown' | 'up' | 'down';

export interface TargetHealth {
  readonly state: CheckedState;
  /** Consecutive successes (0 after a failure). */
  readonly successes: number;
  /** Consecutive failures (0 after a success). */
  readonly failures: number;
  /** Epoch ms of the last state change (or of tracking start). */
  readonly since: number;
  readonly lastError: string | null;
}

export function initialHealth(now: number): TargetHealth {
  return { state: 'unknown', successes: 0, failures: 0, since: now, lastError: null };
}

export function nextHealth(h: TargetHealth, result: ProbeResult, rise: number, fall: number, now: number): TargetHealth {
  if (result.ok) {
    const successes = h.successes + 1;
    if (h.state !== 'up' && successes >= rise) return { state: 'up', successes, failures: 0, since: now, lastError: null };
    return { ...h, successes, failures: 0 };
  }
  const failures = h.failures + 1;
  if (h.state !== 'down' && failures >= fall) return { state: 'down', successes: 0, failures, since: now, lastError: result.error };
  return { ...h, successes: 0, failures, lastError: result.error };
}
