// The daemon-upgrade contract: the messages between a running daemon ("old") and the successor it
// spawns from the code on disk ("new"), over the successor's IPC channel (JSON serialization).
//   old → new  carry      (at spawn)   what to carry on: per app its bound ports and health states
//   new → old  ready                   every app the old daemon serves is serving in the new one
//   old → new  admin      + handle     the old daemon's listening admin socket, its metrics totals and
//                                      its own counters (reloads, rollouts, restarts)
//   new → old  took-over               the new daemon answers on the admin socket; the old one drains
//   old → new  adopt      + handle     a connection one of the old listeners handed over while draining
//                                      (issue 16 §2): the new daemon gives it to a worker of that app
//   old → new  metrics                 the old daemon's final totals, once its listeners have exited
//   new → old  failed                  {code, message}: the new daemon gave up (it drains what it started)
// Both sides may run different versions of fproxy: every message carries `v`, and a side that gets
// a message it does not know fails the upgrade (the old daemon keeps serving) rather than guessing.
import type { HandoverSession, MetricsSnapshot } from '../../proxy/index.ts';
import type { AppCarry } from '../app-supervisor.ts';

export const UPGRADE_VERSION = 1;

/** The daemon's own counters by metric name: every labelled value (optional in `admin`: an older daemon sends none). */
export type DaemonCounters = Readonly<Record<string, readonly { readonly labels: Readonly<Record<string, string | number>>; readonly value: number }[]>>;

/** Environment variable naming the predecessor's pid: set only in a successor daemon. */
export const UPGRADE_FROM_ENV = 'FPROXY_UPGRADE_FROM';

export interface UpgradeCarry {
  readonly fromPid: number;
  /** Apps the old daemon serves: each must be serving in the new one before it takes over. */
  readonly apps: Readonly<Record<string, AppCarry>>;
}

export type ToSuccessor =
  | { readonly v: number; readonly type: 'carry'; readonly carry: UpgradeCarry }
  | { readonly v: number; readonly type: 'admin'; readonly metrics: readonly MetricsSnapshot[]; readonly daemon?: DaemonCounters }
  | { readonly v: number; readonly type: 'metrics'; readonly metrics: readonly MetricsSnapshot[] }
  | { readonly v: number; readonly type: 'adopt'; readonly app: string; readonly from: number; readonly id: number; readonly part: 'client' | 'upstream'; readonly session: HandoverSession };

export type FromSuccessor =
  | { readonly v: number; readonly type: 'ready'; readonly pid: number }
  | { readonly v: number; readonly type: 'took-over'; readonly pid: number }
  | { readonly v: number; readonly type: 'failed'; readonly error: { readonly code: string; readonly message: string } };

function isMessage(raw: unknown): raw is { v: unknown; type: unknown } {
  return typeof raw === 'object' && raw !== null && 'type' in raw && 'v' in raw;
}

/** A message from the successor, or undefined when it is not one this version knows. */
export function parseFromSuccessor(raw: unknown): FromSuccessor | undefined {
  if (!isMessage(raw) || raw.v !== UPGRADE_VERSION) return undefined;
  const m = raw as Record<string, unknown>;
  if ((m.type === 'ready' || m.type === 'took-over') && typeof m.pid === 'number') return m as FromSuccessor;
  const e = m.error as Record<string, unknown> | undefined;
  if (m.type === 'failed' && typeof e?.code === 'string' && typeof e.message === 'string') return m as FromSuccessor;
  return undefined;
}

/** A message from the predecessor, or undefined when it is not one this version knows. */
export function parseToSuccessor(raw: unknown): ToSuccessor | undefined {
  if (!isMessage(raw) || raw.v !== UPGRADE_VERSION) return undefined;
  const m = raw as Record<string, unknown>;
  if (m.type === 'carry' && typeof m.carry === 'object' && m.carry !== null && typeof (m.carry as UpgradeCarry).apps === 'object') return m as ToSuccessor;
  if ((m.type === 'admin' || m.type === 'metrics') && Array.isArray(m.metrics)) return m as ToSuccessor;
  if (m.type === 'adopt' && typeof m.app === 'string' && typeof m.from === 'number' && typeof m.id === 'number' && (m.part === 'client' || m.part === 'upstream') && typeof m.session === 'object' && m.session !== null) return m as ToSuccessor;
  return undefined;
}
