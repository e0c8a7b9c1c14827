// The daemon ⇄ listener IPC contract, both directions, in one file (as Envoy's hot_restart.proto).
// Transport: the Node fork() channel (JSON). Every message carries `v` and a `type`.
// Unknown or malformed messages get an `error` reply, never a crash.
//
// Lifecycle of a listener process (proxy/main.ts):
//   daemon: fork → sends `start` {spec, generation, worker}
//   listener: resolves targets (warm DNS), binds every port with reusePort → `ready` {ports}
//             or `failed` {error} and exits 1
//   daemon: `ping` every heartbeat interval → listener `pong` {activeConnections, …, targets?, panic?}
//   daemon: `health` {states} whenever an active health state changes (`start.health` carries the
//           states known when the process is forked, so a new generation starts with them)
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

/** The daemon's view of a target from active checks (and operator drain), by target as written in config. */
export type ActiveHealth = 'up' | 'down' | 'unknown' | 'drain';
/** Targets absent from the map are 'unknown'. */
export type HealthStates = Readonly<Record<string, ActiveHealth>>;

/** One configured target as a listener sees it (route pools included; a target in several pools once). */
export interface TargetReport {
  /** As written in config. */
  readonly target: string;
  readonly state: 'up' | 'down' | 'ejected' | 'drain' | 'unknown';
  /** Epoch ms of the last state change. */
  readonly since: number;
  readonly lastError: string | null;
  readonly activeConnections: number;
}

// ---- daemon → listener ----
export type ToListener =
  | { readonly v: 1; readonly type: 'start'; readonly spec: ListenerSpec; readonly generation: number; readonly worker: number; readonly health?: HealthStates }
  | { readonly v: 1; readonly type: 'ping'; readonly seq: number }
  | { readonly v: 1; readonly type: 'drain' }
  /** Sent to every live process of the app (all workers and generations) whenever a state changes. */
  | { readonly v: 1; readonly type: 'health'; readonly states: HealthStates };

// ---- listener → daemon ----
export type FromListener =
  | { readonly v: 1; readonly type: 'ready'; readonly ports: readonly number[]; readonly pid: number }
  | { readonly v: 1; readonly type: 'failed'; readonly error: IpcError }
  | ({ readonly v: 1; readonly type: 'pong'; readonly seq: number; readonly targets?: readonly TargetReport[]; readonly panic?: boolean } & ListenerCounters)
  /** Sent when a passive state changes (at most a few per second). */
  | { readonly v: 1; readonly type: 'targets'; readonly targets: readonly TargetReport[]; readonly panic: boolean }
  | { readonly v: 1; readonly type: 'draining'; readonly activeConnections: number }
  | { readonly v: 1; readonly type: 'drained'; readonly closedByTimeout: number }
  | { readonly v: 1; readonly type: 'error'; readonly error: IpcError };

const TO_LISTENER_TYPES = new Set(['start', 'ping', 'drain', 'health']);
const FROM_LISTENER_TYPES = new Set(['ready', 'failed', 'pong', 'draining', 'drained', 'targets', 'error']);

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
