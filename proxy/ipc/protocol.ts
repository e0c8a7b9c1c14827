// The daemon ⇄ listener IPC contract, both directions, in one file (as Envoy's hot_restart.proto).
// Transport: the Node fork() channel (JSON). Every message carries `v` and a `type`.
// Unknown or malformed messages get an `error` reply, never a crash.
//
// Lifecycle of a listener process (proxy/main.ts):
//   daemon: fork → sends `start` {spec, generation, worker}
//   listener: resolves targets (warm DNS), binds every port with reusePort → `ready` {ports}
//             or `failed` {error} and exits 1
//   daemon: `ping` every heartbeat interval → listener `pong` {activeConnections}
//   daemon: `metrics` {seq} (on every scrape / stats sample) → listener `metrics-snapshot` {seq, snapshot}
//   daemon: `drain` → listener closes its servers, `draining`, waits for open connections up to
//           spec.drainTimeoutMs, then `drained` {snapshot: its final counts} and exits 0
//   daemon gone (IPC 'disconnect') → the listener drains and exits by itself.
import type { HistogramSnapshot } from '../metrics/fixed-histogram.ts';
import type { ListenerSpec } from '../spec.ts';

export type { HistogramSnapshot };

export const IPC_VERSION = 1;

export interface IpcError {
  /** Stable code: ERR_BIND, ERR_SPEC_INVALID, ERR_IPC_UNKNOWN … */
  readonly code: string;
  readonly message: string;
}

/** The `result` of one connect attempt: connected, or why not. */
export type AttemptResult = 'ok' | 'refused' | 'timeout' | 'unreachable' | 'dns';

/** DNS cache answers since start: fresh (hit), resolver queries (miss), past TTL (stale), failed queries (error). */
export interface DnsLookupCounts {
  readonly hit: number;
  readonly miss: number;
  readonly stale: number;
  readonly error: number;
}

/**
 * One listener process's figures since it started (counters only grow; the daemon adds the
 * snapshots of every live process to the retired processes' final ones). Durations in seconds,
 * histograms over DURATION_BUCKETS (proxy/metrics/fixed-histogram.ts).
 */
export interface MetricsSnapshot {
  readonly app: string;
  /** Client connections open right now (gauge). */
  readonly activeConnections: number;
  /** Closed client connections by session outcome: ok, connect-failed, no-route, handshake-timeout, … */
  readonly connections: Readonly<Record<string, number>>;
  /** Failed connections by reason code: ERR_NO_ROUTE, ERR_CONNECT_EXHAUSTED, ERR_TLS_HANDSHAKE, … */
  readonly failures: Readonly<Record<string, number>>;
  /** Bytes from clients (in) and to clients (out), on the wire, of closed connections. */
  readonly bytesIn: number;
  readonly bytesOut: number;
  /** Connect attempts per target (as written in config) by result. */
  readonly attempts: Readonly<Record<string, Readonly<Partial<Record<AttemptResult, number>>>>>;
  /** Open upstream connections per target right now (gauge). */
  readonly targetActive: Readonly<Record<string, number>>;
  readonly connectDuration: HistogramSnapshot;
  /** Inspect (ClientHello read) or terminate (handshake done), from accept. */
  readonly tlsHandshakeDuration: HistogramSnapshot;
  readonly sessionDuration: HistogramSnapshot;
  readonly dns: DnsLookupCounts;
  /**
   * Per-target state when the listener has a target pool that reports it (contracts.md
   * TargetReport: only `target` and `state` are read here); absent = every target counts as up.
   */
  readonly targets?: readonly { readonly target: string; readonly state: string }[];
}

// ---- daemon → listener ----
export type ToListener =
  | { readonly v: 1; readonly type: 'start'; readonly spec: ListenerSpec; readonly generation: number; readonly worker: number }
  | { readonly v: 1; readonly type: 'ping'; readonly seq: number }
  | { readonly v: 1; readonly type: 'metrics'; readonly seq: number }
  | { readonly v: 1; readonly type: 'drain' };

// ---- listener → daemon ----
export type FromListener =
  | { readonly v: 1; readonly type: 'ready'; readonly ports: readonly number[]; readonly pid: number }
  | { readonly v: 1; readonly type: 'failed'; readonly error: IpcError }
  | { readonly v: 1; readonly type: 'pong'; readonly seq: number; readonly activeConnections: number }
  | { readonly v: 1; readonly type: 'metrics-snapshot'; readonly seq: number; readonly snapshot: MetricsSnapshot }
  | { readonly v: 1; readonly type: 'draining'; readonly activeConnections: number }
  /** `snapshot`: the final counts, so nothing counted between the last scrape and the exit is lost. */
  | { readonly v: 1; readonly type: 'drained'; readonly closedByTimeout: number; readonly snapshot?: MetricsSnapshot }
  | { readonly v: 1; readonly type: 'error'; readonly error: IpcError };

const TO_LISTENER_TYPES = new Set(['start', 'ping', 'metrics', 'drain']);
const FROM_LISTENER_TYPES = new Set(['ready', 'failed', 'pong', 'metrics-snapshot', 'draining', 'drained', 'error']);

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
