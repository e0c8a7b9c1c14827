// The daemon ⇄ listener IPC contract, both directions, in one file (as Envoy's hot_restart.proto).
// Transport: the Node fork() channel (JSON). Every message carries `v` and a `type`.
// Unknown or malformed messages get an `error` reply, never a crash.
//
// Lifecycle of a listener process (proxy/main.ts):
//   daemon: fork → sends `start` {spec, generation, worker}
//   listener: resolves targets (warm DNS), binds every port with reusePort → `ready` {ports}
//             or `failed` {error} and exits 1
//   daemon: `ping` every heartbeat interval → listener `pong` {activeConnections, …, targets, panic}
//   daemon: `health` {states} whenever an active-check state changes (also `start.health`)
//   listener: `targets` {targets, panic} when passive health changes a target (a few per second at most)
//   daemon: `drain` → listener closes its servers, `draining`, waits for open connections up to
//           spec.drainTimeoutMs, then `drained` and exits 0
//   daemon gone (IPC 'disconnect') → the listener drains and exits by itself.
import type { ListenerSpec } from '../spec.ts';

export const IPC_VERSION = 1;

export interface IpcError {
  /** Stable code: ERR_BIND, ERR_SPEC_INVALID, ERR_IPC_UNKNOWN … */
  readonly code: string;
  readonly message: string;
}

export interface ListenerCounters {
  /** Connections open right now (client side). */
  readonly activeConnections: number;
  /** Connections accepted since start. */
  readonly totalConnections: number;
  /** Connections that ended in a reset because no target could be reached. */
  readonly failedConnections: number;
  readonly bytesIn: number;
  readonly bytesOut: number;
}

/** The daemon's view of each target (by its raw config text) from active checks; absent = 'unknown'. */
export type HealthStates = Readonly<Record<string, 'up' | 'down' | 'unknown' | 'drain'>>;

/** One listener's view of one configured target (route pools included; each target once). */
export interface TargetReport {
  /** As written in config (the Address of an object target). */
  readonly target: string;
  /** 'down'/'drain' from the daemon; else 'ejected' by passive health; else the daemon's 'up'/'unknown'. */
  readonly state: 'up' | 'down' | 'ejected' | 'drain' | 'unknown';
  /** Epoch ms of the last state change. */
  readonly since: number;
  readonly lastError: string | null;
  /** This process's connections to the target (connecting or open). */
  readonly activeConnections: number;
}

export interface TargetsReport {
  readonly targets: readonly TargetReport[];
  /** Some pool has no usable target and is using all of them. */
  readonly panic: boolean;
}

// ---- daemon → listener ----
export type ToListener =
  | { readonly v: 1; readonly type: 'start'; readonly spec: ListenerSpec; readonly generation: number; readonly worker: number; readonly health?: HealthStates }
  | { readonly v: 1; readonly type: 'health'; readonly states: HealthStates }
  | { readonly v: 1; readonly type: 'ping'; readonly seq: number }
  | { readonly v: 1; readonly type: 'drain' };

// ---- listener → daemon ----
export type FromListener =
  | { readonly v: 1; readonly type: 'ready'; readonly ports: readonly number[]; readonly pid: number }
  | { readonly v: 1; readonly type: 'failed'; readonly error: IpcError }
  | ({ readonly v: 1; readonly type: 'pong'; readonly seq: number } & ListenerCounters & TargetsReport)
  | ({ readonly v: 1; readonly type: 'targets' } & TargetsReport)
  | { readonly v: 1; readonly type: 'draining'; readonly activeConnections: number }
  | { readonly v: 1; readonly type: 'drained'; readonly closedByTimeout: number }
  | { readonly v: 1; readonly type: 'error'; readonly error: IpcError };

const TO_LISTENER_TYPES = new Set(['start', 'health', 'ping', 'drain']);
const FROM_LISTENER_TYPES = new Set(['ready', 'failed', 'pong', 'targets', 'draining', 'drained', 'error']);

function hasType(msg: unknown, types: Set<string>): boolean {
  if (typeof msg !== 'object' || msg === null) return false;
  const m = msg as { v?: unknown; type?: unknown };
  return m.v === IPC_VERSION && typeof m.type === 'string' && types.has(m.type);
}

/** Narrow a message received by a listener; undefined = reply with an `error`. */
export function asToListener(msg: unknown): ToListener | undefined {
  return hasType(msg, TO_LISTENER_TYPES) ? (msg as ToListener) : undefined;
}

/** Narrow a message received by the daemon; undefined = log it and ignore. */
export function asFromListener(msg: unknown): FromListener | undefined {
  return hasType(msg, FROM_LISTENER_TYPES) ? (msg as FromListener) : undefined;
}

export function describeUnknown(msg: unknown): IpcError {
  let text: string;
  try {
    text = JSON.stringify(msg)?.slice(0, 200) ?? String(msg);
  } catch {
    text = String(msg);
  }
  return { code: 'ERR_IPC_UNKNOWN', message: `Unknown IPC message (expected v=${IPC_VERSION} with a known type): ${text}` };
}
