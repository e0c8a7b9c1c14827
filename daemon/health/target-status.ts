// targetStatus: the `health` and `panic` of one app in GET /apps, merged from the daemon's active
// checks and the serving generation's workers' target reports (contracts.md). Pure.
// A target's state: the active state if 'down' or 'drain'; else 'ejected' if any worker ejected it;
// else the active state if checks run ('up'/'unknown'); else 'up' (no checks, not ejected).
// Connections are summed over the workers; panic is any worker's. A worker that sends no target
// reports (a listener without a target pool) counts as nothing ejected and no connections.
import type { ListenerTargets } from '../listener-process.ts';
import type { ActiveTargetHealth } from './health-checker.ts';

/** One element of an app's `health` in GET /apps. */
export interface TargetStatus {
  readonly target: string;
  readonly state: 'up' | 'down' | 'ejected' | 'drain' | 'unknown';
  /** ISO time of the last change of the state shown. */
  readonly since: string;
  readonly lastError: string | null;
  readonly activeConnections: number;
}

export interface AppHealth {
  readonly health: TargetStatus[];
  readonly panic: boolean;
}

/**
 * @param targets every configured target, each once, in config order
 * @param active the daemon's view of a target (undefined: not tracked yet)
 * @param views the serving generation's workers' latest target reports
 * @param now fallback `since` for a target nothing has seen yet
 */
export function targetStatus(targets: readonly string[], active: (target: string) => ActiveTargetHealth | undefined, views: readonly ListenerTargets[], now: number): AppHealth {
  const health = targets.map((target): TargetStatus => {
    const a = active(target);
    let connections = 0;
    let ejectedSince: number | undefined;
    let reportedError: string | null = null;
    for (const view of views) {
      const report = view.targets.find((r) => r.target === target);
      if (report === undefined) continue;
      connections += report.activeConnections;
      reportedError ??= report.lastError;
      if (report.state === 'ejected') ejectedSince = Math.max(ejectedSince ?? 0, report.since);
    }
    const since = a?.since ?? now;
    const entry = (state: TargetStatus['state'], at: number, lastError: string | null): TargetStatus => ({ target, state, since: iso(at), lastError, activeConnections: connections });
    if (a !== undefined && a.checked && a.state === 'down') return entry('down', since, a.lastError);
    if (ejectedSince !== undefined) return entry('ejected', ejectedSince, reportedError ?? a?.lastError ?? null);
    if (a !== undefined && a.checked) return entry(a.state, since, a.lastError ?? reportedError);
    return entry('up', since, reportedError);
  });
  return { health, panic: views.some((v) => v.panic) };
}

function iso(ms: number): string {
  return new Date(ms).toISOString();
}
