// The daemon ⇄ listener IPC contract, both directions, in one file (as Envoy's hot_restart.proto).
// Transport: the Node fork() channel (JSON). Every message carries `v` and a `type`.
// Unknown or malformed messages get an `error` reply, never a crash.
//
// Lifecycle of a listener process (proxy/main.ts):
//   daemon: fork → sends `start` {spec, generation, worker}
//   listener: resolves targets (warm DNS), binds every port with reusePort → `ready` {ports}
//             or `failed` {error} and exits 1
//   daemon: `ping` every heartbeat interval → listener `pong` {activeConnections, …}
//   daemon: `drain` → listener closes its servers, `draining`, waits for open connections up to
//           spec.drainTimeoutMs, then `drained` and exits 0
//   daemon gone (IPC 'disconnect') → the listener drains and exits by itself.
//
// Limits (issue 12; only for apps with MaxConnections or PerSource limits): the daemon owns each
// app's limits (proxy/protect/limit-authority.ts); listeners lease slots and tokens in blocks:
//   listener `lease` {seq, app, key, slots, tokens} → daemon `lease-grant` {seq, app, slots, tokens, keepApp, keepSlots}
//   listener `lease-return` {app, key, slots, tokens, recall} (spare slots back; unasked, or after a recall)
//   daemon `lease-recall` {key} → the listener returns every spare slot of that kind (`lease-return` with recall: true)
// A listener that exits gives back everything it held (the daemon drops its leases).
import type { ListenerSpec } from '../spec.ts';
import type { LeaseGrant, LeaseRecall, LeaseRequest, LeaseReturn } from '../protect/lease-messages.ts';

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

// ---- daemon → listener ----
export type ToListener =
  | { readonly v: 1; readonly type: 'start'; readonly spec: ListenerSpec; readonly generation: number; readonly worker: number }
  | { readonly v: 1; readonly type: 'ping'; readonly seq: number }
  | { readonly v: 1; readonly type: 'drain' }
  | ({ readonly v: 1; readonly type: 'lease-grant' } & LeaseGrant)
  | ({ readonly v: 1; readonly type: 'lease-recall' } & LeaseRecall);

// ---- listener → daemon ----
export type FromListener =
  | { readonly v: 1; readonly type: 'ready'; readonly ports: readonly number[]; readonly pid: number }
  | { readonly v: 1; readonly type: 'failed'; readonly error: IpcError }
  | ({ readonly v: 1; readonly type: 'pong'; readonly seq: number } & ListenerCounters)
  | { readonly v: 1; readonly type: 'draining'; readonly activeConnections: number }
  | { readonly v: 1; readonly type: 'drained'; readonly closedByTimeout: number }
  | { readonly v: 1; readonly type: 'error'; readonly error: IpcError }
  | ({ readonly v: 1; readonly type: 'lease' } & LeaseRequest)
  | ({ readonly v: 1; readonly type: 'lease-return' } & LeaseReturn);

const TO_LISTENER_TYPES = new Set(['start', 'ping', 'drain', 'lease-grant', 'lease-recall']);
const FROM_LISTENER_TYPES = new Set(['ready', 'failed', 'pong', 'draining', 'drained', 'error', 'lease', 'lease-return']);

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
