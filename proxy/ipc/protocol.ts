// The daemon ⇄ listener IPC contract, both directions, in one file (as Envoy's hot_restart.proto).
// Transport: the Node fork() channel (JSON). Every message carries `v` and a `type`.
// Every message received is validated here, at the boundary (zod, once per message: start, the
// 5 s ping/pong, drain — never per connection), and an invalid one gets an `error` reply, never a
// crash: a malformed `start` is answered `failed` ERR_SPEC_INVALID naming the bad path, an unknown
// message `error` ERR_IPC_UNKNOWN, a known type with bad fields `error` ERR_IPC_INVALID.
//
// Lifecycle of a listener process (proxy/main.ts):
//   daemon: fork → sends `start` {spec, generation, worker}
//   listener: resolves targets (warm DNS), binds every port with reusePort → `ready` {ports}
//             or `failed` {error} and exits 1 (a `start` that fails validation: `failed`, and the
//             process stays up waiting for a valid one)
//   daemon: `ping` every heartbeat interval → listener `pong` {activeConnections, targets?, panic?}
//   daemon: `metrics` {seq} (on every scrape / stats sample) → listener `metrics-snapshot` {seq, snapshot}
//           (and `drained` carries the final snapshot, so nothing counted before the exit is lost)
//   daemon: `health` {states} whenever an active health state changes (`start.health` carries the
//           states known when the process is forked, so a new generation starts with them)
//   listener: `targets` {targets, panic} when a passive (outlier) state changes, at most a few a second
//   daemon: `drain` → listener closes its servers, `draining`, waits for open connections up to
//           spec.drainTimeoutMs, then `drained` {snapshot: its final counts} and exits 0
//   daemon gone (IPC 'disconnect') → the listener drains and exits by itself.
//
// Limits (issue 12; only for apps with MaxConnections or PerSource limits): the daemon owns each
// app's limits (proxy/protect/limit-authority.ts); listeners lease slots and tokens in blocks:
//   listener `lease` {seq, app, key, slots, tokens} → daemon `lease-grant` {seq, app, slots, tokens, keepApp, keepSlots}
//   listener `lease-return` {app, key, slots, tokens, recall} (spare slots back; unasked, or after a recall)
//   daemon `lease-recall` {key} → the listener returns every spare slot of that kind (`lease-return` with recall: true)
// A listener that exits gives back everything it held (the daemon drops its leases).
//
// Adding a message: one entry in TO_LISTENER or FROM_LISTENER (type name → its fields); the TS
// union, the validation and the set of known types follow from it. Adding a field: one line in
// that entry (a spec field goes in proxy/spec.ts). Optional fields use z.optional(...).
import * as z from 'zod/mini';
// English issue messages without zod/mini's global config (the daemon's zod keeps its own).
import en from 'zod/v4/locales/en.js';
import { ListenerSpecSchema } from '../spec.ts';
import type { HistogramSnapshot } from '../metrics/fixed-histogram.ts';

export type { HistogramSnapshot };

export const IPC_VERSION = 1;

const count = () => z.int().check(z.minimum(0));

export const IpcErrorSchema = z.object({
  /** Stable code: ERR_BIND, ERR_SPEC_INVALID, ERR_IPC_UNKNOWN, ERR_IPC_INVALID … */
  code: z.string(),
  message: z.string(),
});
export type IpcError = z.output<typeof IpcErrorSchema>;

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
  /** Log lines the process dropped on a full or broken stdout (proxy/log.ts); absent = 0 (totals carried from an older daemon). */
  readonly logLinesDropped?: number;
  /**
   * Per-target state when the listener has a target pool that reports it (contracts.md
   * TargetReport: only `target` and `state` are read here); absent = every target counts as up.
   */
  readonly targets?: readonly { readonly target: string; readonly state: string }[];
}

const HistogramSchema = z.object({ counts: z.array(z.number()), sum: z.number() });
const CountsSchema = z.record(z.string(), z.number());
/**
 * The shape is checked field by field, then typed as the MetricsSnapshot interface (whose fields are
 * readonly; zod's output is not): the listener's own bookkeeping, read only by the daemon's metrics.
 */
const MetricsSnapshotShape = z.object({
  app: z.string(),
  activeConnections: count(),
  connections: CountsSchema,
  failures: CountsSchema,
  bytesIn: z.number(),
  bytesOut: z.number(),
  attempts: z.record(z.string(), CountsSchema),
  targetActive: CountsSchema,
  connectDuration: HistogramSchema,
  tlsHandshakeDuration: HistogramSchema,
  sessionDuration: HistogramSchema,
  dns: z.object({ hit: z.number(), miss: z.number(), stale: z.number(), error: z.number() }),
  logLinesDropped: z.optional(count()),
  targets: z.optional(z.array(z.object({ target: z.string(), state: z.string() }))),
});
const MetricsSnapshotSchema = MetricsSnapshotShape as unknown as z.ZodMiniType<MetricsSnapshot>;

/** The daemon's view of a target from active checks (and operator drain), by target as written in config. */
const ActiveHealthSchema = z.enum(['up', 'down', 'unknown', 'drain']);
export type ActiveHealth = z.output<typeof ActiveHealthSchema>;
/** Targets absent from the map are 'unknown'. */
const HealthStatesSchema = z.record(z.string(), ActiveHealthSchema);
export type HealthStates = Readonly<Record<string, ActiveHealth>>;

/** One configured target as a listener sees it (route pools included; a target in several pools once). */
const TargetReportSchema = z.object({
  /** As written in config. */
  target: z.string(),
  state: z.enum(['up', 'down', 'ejected', 'drain', 'unknown']),
  /** Epoch ms of the last state change. */
  since: z.number(),
  lastError: z.nullable(z.string()),
  activeConnections: count(),
});
export type TargetReport = z.output<typeof TargetReportSchema>;

export interface TargetsReport {
  readonly targets: readonly TargetReport[];
  /** Some pool has no usable target and is using all of them. */
  readonly panic: boolean;
}

/**
 * One half of a forwarding session handed to a new generation (issue 16 §2): sent once with the
 * client socket (`part: "client"`) and once with the upstream socket, each message carrying the
 * socket as its handle. `pending`: bytes already read from this part's socket and not yet written
 * to the other side (base64; the receiver writes them first).
 */
const HandoverSessionSchema = z.object({
  target: z.string(),
  endpoint: z.optional(z.string()),
  client: z.optional(z.string()),
  sni: z.optional(z.string()),
  /** Epoch ms of the original accept (access-log duration). */
  startedAt: z.number(),
  /** Bytes the client sent / was sent so far (access log and metrics count the whole connection). */
  bytesIn: count(),
  bytesOut: count(),
  attempts: count(),
  connectMs: z.number(),
  handshakeMs: z.number(),
  pending: z.string(),
  /**
   * The limit leases the connection held in the old process (an app slot, a slot of source `key`),
   * handed over with it: the daemon moves them to the adopting process and says here what moved
   * (absent: nothing moved — the adopter leases what it needs).
   */
  lease: z.optional(z.object({ app: count(), slots: count(), key: z.nullable(z.string()) })),
});
export type HandoverSession = z.output<typeof HandoverSessionSchema>;
const HandoverPart = z.enum(['client', 'upstream']);

// ---- daemon → listener ---- (strict: a key the listener does not know is an error, so a start it
// cannot fully honour fails loudly instead of running without it)
const TO_LISTENER = messages('strict', {
  start: { spec: ListenerSpecSchema, generation: count(), worker: count(), health: z.optional(HealthStatesSchema) },
  ping: { seq: count() },
  /** Asked on every scrape / stats sample; answered with `metrics-snapshot`. */
  metrics: { seq: count() },
  /** handOver: move established connections to the app's new generation (a rollout) instead of waiting for them. */
  drain: { handOver: z.optional(z.boolean()) },
  /** A handed-over session's socket (the message's handle), relayed from a draining worker: `from` its pid. */
  adopt: { from: count(), id: count(), part: HandoverPart, session: HandoverSessionSchema },
  /** Sent to every live process of the app (all workers and generations) whenever a state changes. */
  health: { states: HealthStatesSchema },
  'lease-grant': { seq: count(), app: count(), slots: count(), tokens: count(), keepApp: count(), keepSlots: count() },
  'lease-recall': { key: z.nullable(z.string()) },
});

// ---- listener → daemon ---- (unknown keys are dropped, not errors: a pong must never be refused
// for carrying more than the daemon reads, or a healthy listener would be killed as hung)
const FROM_LISTENER = messages('strip', {
  ready: { ports: z.array(z.int().check(z.minimum(1), z.maximum(65535))), pid: count() },
  failed: { error: IpcErrorSchema },
  pong: { seq: count(), activeConnections: count(), targets: z.optional(z.array(TargetReportSchema)), panic: z.optional(z.boolean()) },
  'metrics-snapshot': { seq: count(), snapshot: MetricsSnapshotSchema },
  /** Sent when a passive state changes (at most a few per second). */
  targets: { targets: z.array(TargetReportSchema), panic: z.boolean() },
  draining: { activeConnections: count() },
  /** `snapshot`: the final counts, so nothing counted between the last scrape and the exit is lost. */
  drained: { closedByTimeout: count(), snapshot: z.optional(MetricsSnapshotSchema) },
  error: { error: IpcErrorSchema },
  /** A forwarding session's socket (the message's handle), to be relayed to a worker of the new generation. */
  handover: { id: count(), part: HandoverPart, session: HandoverSessionSchema },
  /**
   * The listener got SIGTERM (issue 16): it keeps serving until the daemon has started its
   * replacement, then is sent `drain` with handOver (or without, when no replacement starts).
   */
  stopping: { reason: z.string() },
  lease: { seq: count(), app: count(), key: z.nullable(z.string()), slots: count(), tokens: count() },
  'lease-return': { app: count(), key: z.nullable(z.string()), slots: count(), tokens: count(), recall: z.boolean() },
});

export type ToListener = MessageOf<typeof TO_LISTENER>;
export type FromListener = MessageOf<typeof FROM_LISTENER>;

/** A validated message, or why it is not one (`type` set when the type is known but its fields are bad). */
export type Received<M> =
  | { readonly ok: true; readonly msg: M }
  | { readonly ok: false; readonly type: string | undefined; readonly error: IpcError };

/** Validate a message received by a listener. A bad `start` is ERR_SPEC_INVALID (answer `failed`). */
export function parseToListener(raw: unknown): Received<ToListener> {
  return receive(TO_LISTENER, raw, (type) => (type === 'start' ? 'ERR_SPEC_INVALID' : 'ERR_IPC_INVALID')) as Received<ToListener>;
}

/** Validate a message received by the daemon; not ok = log it and ignore. */
export function parseFromListener(raw: unknown): Received<FromListener> {
  return receive(FROM_LISTENER, raw, () => 'ERR_IPC_INVALID') as Received<FromListener>;
}

export function describeUnknown(msg: unknown): IpcError {
  return { code: 'ERR_IPC_UNKNOWN', message: `Unknown IPC message (expected v=${IPC_VERSION} with a known type): ${preview(msg)}` };
}

// ---- machinery ----

type Schemas = Record<string, z.ZodMiniType>;
type MessageSchema<K extends string, F extends z.core.$ZodShape> = z.ZodMiniObject<{ v: z.ZodMiniLiteral<typeof IPC_VERSION>; type: z.ZodMiniLiteral<K> } & F>;
type MessageOf<M extends Schemas> = { [K in keyof M]: z.output<M[K]> }[keyof M];

/** type name → fields, to type name → schema of `{v, type, ...fields}`. */
function messages<const M extends Record<string, z.core.$ZodShape>>(unknownKeys: 'strict' | 'strip', fields: M): { [K in keyof M & string]: MessageSchema<K, M[K]> } {
  const out: Schemas = {};
  const object = unknownKeys === 'strict' ? z.strictObject : z.object;
  for (const [type, shape] of Object.entries(fields)) out[type] = object({ v: z.literal(IPC_VERSION), type: z.literal(type), ...shape });
  return out as { [K in keyof M & string]: MessageSchema<K, M[K]> };
}

const EN_ERRORS = { error: en().localeError };
const MAX_ISSUES = 5;

function receive(schemas: Schemas, raw: unknown, invalidCode: (type: string) => string): Received<unknown> {
  const m = typeof raw === 'object' && raw !== null ? (raw as { v?: unknown; type?: unknown }) : undefined;
  const type = m?.type;
  if (m?.v !== IPC_VERSION || typeof type !== 'string' || !Object.hasOwn(schemas, type)) {
    return { ok: false, type: undefined, error: describeUnknown(raw) };
  }
  const result = schemas[type]!.safeParse(raw, EN_ERRORS);
  if (result.success) return { ok: true, msg: result.data };
  const issues = result.error.issues;
  const listed = issues.slice(0, MAX_ISSUES).map((i) => (i.path.length > 0 ? `${formatPath(i.path)}: ${i.message}` : i.message));
  if (issues.length > MAX_ISSUES) listed.push(`and ${issues.length - MAX_ISSUES} more`);
  return { ok: false, type, error: { code: invalidCode(type), message: `Invalid "${type}" IPC message: ${listed.join('; ')}` } };
}

/** ["spec", "targets", 0, "port"] → "spec.targets[0].port". */
function formatPath(path: readonly PropertyKey[]): string {
  let out = '';
  for (const seg of path) out += typeof seg === 'number' ? `[${seg}]` : out === '' ? String(seg) : `.${String(seg)}`;
  return out;
}

function preview(msg: unknown): string {
  try {
    return JSON.stringify(msg)?.slice(0, 200) ?? String(msg);
  } catch {
    return String(msg);
  }
}
