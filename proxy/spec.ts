// ListenerSpec: everything one listener process needs to serve one app generation.
// The daemon maps an app's validated config to this (daemon/config/to-spec.ts); the listener
// never sees config.json. Plain JSON only: it crosses the IPC channel as is.
//
// The interfaces below are the documented contract; the zod schemas after them check a spec that
// arrives over IPC (proxy/ipc/protocol.ts). Adding a field: add it to its interface and to the
// schema of the same name; tsc fails (at the `Same*` checks) until both agree, so a field can
// never be dropped silently at the boundary. zod/mini: the listener bundles only what it uses.
import * as z from 'zod/mini';

/** A configured target, parsed once: `host:port` or `[v6]:port`. */
export interface TargetSpec {
  /** As written in config, for logs and errors: "db.internal:5432". */
  readonly raw: string;
  /** Hostname or IP literal, without brackets. */
  readonly host: string;
  readonly port: number;
  /** Relative share of new connections (round-robin, least-connections, random-two, source-hash). Default 1. */
  readonly weight?: number;
  /** Gets connections only when no primary target of its pool is usable. Default false. */
  readonly backup?: boolean;
  /**
   * Concurrent connections to this target per listener process (a full target is skipped like an
   * unhealthy one; all full → queueTimeoutMs applies, else the connection is refused). Absent = no limit.
   */
  readonly maxConnections?: number;
}

/** A target pool selected by SNI (and optionally ALPN) on a TLS app. */
export interface RouteSpec {
  /** Lower-case exact names or "*.suffix" wildcards. */
  readonly sni: readonly string[];
  /** ALPN protocol ids; empty = any. */
  readonly alpn: readonly string[];
  readonly targets: readonly TargetSpec[];
}

export interface CertSpec {
  /** Absolute paths. */
  readonly certPath: string;
  readonly keyPath: string;
}

export interface TlsSpec {
  /** passthrough: peek SNI, forward the encrypted bytes. terminate: handshake here, forward plaintext. */
  readonly mode: 'passthrough' | 'terminate';
  /** terminate only; the first is the default certificate. */
  readonly certs: readonly CertSpec[];
}

/** Active health checks of an app's targets. Probing is the daemon's (once per target per interval, whatever the worker count); a listener only receives the resulting states (`health` IPC message). */
export interface HealthCheckSpec {
  /** Time between two probes of one target. */
  readonly intervalMs: number;
  /** A probe not finished by then fails. Default min(1000, intervalMs); never more than intervalMs. */
  readonly timeoutMs: number;
  /** Consecutive successes that make a target up. Default 2. */
  readonly rise: number;
  /** Consecutive failures that make a target down. Default 2. */
  readonly fall: number;
  /** Port to probe instead of the target's own (a management port). null = the target's port. */
  readonly port: number | null;
  /** Bytes (UTF-8) to send once connected. null = send nothing. */
  readonly send: string | null;
  /** Healthy only when the reply contains this (UTF-8). null = connecting (and sending) is enough. */
  readonly expect: string | null;
  /** HTTP check: `GET <httpPath> HTTP/1.1`. null = not HTTP. Exclusive with send/expect. */
  readonly httpPath: string | null;
  /** HTTP statuses that count as healthy; empty = any 2xx. */
  readonly expectStatus: readonly number[];
}

/** Per-source limits (issue 12); a source is an IPv4 address or an IPv6 /prefix6 network. */
export interface PerSourceSpec {
  /** Concurrent connections per source. 0 = no limit. */
  readonly maxConnections: number;
  /** New connections per second per source (token bucket). 0 = no limit. */
  readonly ratePerSecond: number;
  /** Bucket size: connections a source may open at once. Default: ratePerSecond (at least 1). */
  readonly burst: number;
  /** IPv6 sources are grouped by this prefix length. Default 64. */
  readonly prefix6: number;
}

export interface ListenerSpec {
  /** App name, used in every log line and error. */
  readonly app: string;
  /** Ports to bind, all with SO_REUSEPORT, on each address of `listen`. */
  readonly ports: readonly number[];
  /**
   * IP addresses to bind every port on. Empty (or absent, as from an older daemon or a test's
   * hand-made spec) = every interface, IPv4 and IPv6: the default.
   */
  readonly listen?: readonly string[];
  /** Default target pool. May be empty on a TLS app whose routes cover every name. */
  readonly targets: readonly TargetSpec[];
  /** How a pool picks among its usable targets. Default "round-robin". */
  readonly strategy: StrategySpec;
  /** Passive health: eject a target after consecutive failed attempts. Default on (OUTLIER_DEFAULTS); null = off. */
  readonly outlierDetection: OutlierDetectionSpec | null;
  /** "close": reset open connections to a target when active checks mark it down. Default "keep". */
  readonly onTargetDown: 'keep' | 'close';
  /** Rollouts hand established plain TCP / TLS passthrough connections to the new generation instead of draining them. Absent = true. */
  readonly handOver?: boolean;
  /** A handed-over connection whose target the new spec removed: "keep" it (its upstream stays) or "close" it. Absent = "keep". */
  readonly onTargetRemoved?: 'keep' | 'close';
  /** Whole budget to reach some target, retries included. Default 5000. Must be > 0. */
  readonly connectTimeoutMs: number;
  /** Cap on one connect attempt (never more than what is left of the budget). Default 2000. */
  readonly connectAttemptTimeoutMs: number;
  /** Close a connection after this long with no bytes either way. Default 3600000 (1 h, as Envoy's tcp_proxy). 0 = never. */
  readonly idleTimeoutMs: number;
  /** How long a draining listener waits for open connections before closing them. Default 30000. 0 = close at once. */
  readonly drainTimeoutMs: number;
  /** Time to receive the PROXY header and the whole ClientHello. Default 5000. */
  readonly handshakeTimeoutMs: number;
  /** Absent = plain TCP app. */
  readonly tls?: TlsSpec;
  /** SNI routes; only with tls. */
  readonly routes: readonly RouteSpec[];
  /** Expect a PROXY protocol v1/v2 header from the client. Default false. */
  readonly acceptProxyProtocol: boolean;
  /** Send a PROXY header to the upstream. Default none. */
  readonly sendProxyProtocol: 'none' | 'v1' | 'v2';
  /** One info line per closed connection (proxy/access-log.ts). Default false. */
  readonly accessLog: boolean;
  /** Listener processes for this app (SO_REUSEPORT group). Default: number of CPUs. */
  readonly workers: number;
  /** Active health checks, run by the daemon (the listener ignores this). Default null = none. */
  readonly healthCheck: HealthCheckSpec | null;
  /** CIDR ranges allowed in; null = everyone (Deny still applies). Checked on the real client address. */
  readonly allow: readonly string[] | null;
  /** CIDR ranges refused (wins over allow). Default none. */
  readonly deny: readonly string[];
  /** Concurrent connections of the whole app (every worker and generation). 0 = no limit (default). */
  readonly maxConnections: number;
  /** Over maxConnections, or with every target of the pool at its maxConnections, hold a new connection (not read, not connected) this long for a free slot. 0 = refuse at once (default). */
  readonly queueTimeoutMs: number;
  /** Default null (no per-source limits). */
  readonly perSource: PerSourceSpec | null;
  /** Close connections older than this. 0 = never (default). */
  readonly maxConnectionDurationMs: number;
  /** Plain TCP apps: close a client that sent nothing for this long. 0 = never (default: server-speaks-first protocols are normal). */
  readonly firstByteTimeoutMs: number;
}

export const STRATEGY_NAMES = ['round-robin', 'least-connections', 'random-two', 'source-hash', 'first'] as const;

export type StrategySpec = (typeof STRATEGY_NAMES)[number];

export interface OutlierDetectionSpec {
  /** Failed attempts in a row that eject a target. Default 3. */
  readonly consecutiveFailures: number;
  /** First ejection time; doubled on each ejection in a row. Default 10000. */
  readonly ejectMs: number;
  /** Cap on the doubled ejection time. Default 300000. */
  readonly maxEjectMs: number;
  /** Most of a pool that may be ejected at once, in percent (at least one target unless 0). Default 100. */
  readonly maxEjectPercent: number;
}

export const OUTLIER_DEFAULTS: OutlierDetectionSpec = {
  consecutiveFailures: 3,
  ejectMs: 10_000,
  maxEjectMs: 300_000,
  maxEjectPercent: 100,
};

export const SPEC_DEFAULTS = {
  strategy: 'round-robin',
  outlierDetection: OUTLIER_DEFAULTS,
  onTargetDown: 'keep',
  handOver: true,
  onTargetRemoved: 'keep',
  connectTimeoutMs: 5000,
  connectAttemptTimeoutMs: 2000,
  idleTimeoutMs: 3_600_000,
  drainTimeoutMs: 30_000,
  handshakeTimeoutMs: 5000,
  acceptProxyProtocol: false,
  sendProxyProtocol: 'none',
  allow: null,
  deny: Object.freeze([]) as readonly string[],
  maxConnections: 0,
  queueTimeoutMs: 0,
  perSource: null,
  maxConnectionDurationMs: 0,
  firstByteTimeoutMs: 0,
  healthCheck: null,
  accessLog: false,
} as const;

/** Defaults inside HealthCheck (timeoutMs is also capped at intervalMs). */
export const HEALTH_CHECK_DEFAULTS = {
  timeoutMs: 1000,
  rise: 2,
  fall: 2,
} as const;

/** PerSource defaults applied by the daemon's to-spec. */
export const PER_SOURCE_DEFAULTS = { maxConnections: 0, ratePerSecond: 0, prefix6: 64 } as const;

// ---- Schemas (checked against the interfaces above) ----

/** Node's longest timer (ms); the config schema caps every timeout at it too. */
const MAX_TIMER_MS = 2_147_483_647;
const ms = (min: 0 | 1) => z.int().check(z.minimum(min), z.maximum(MAX_TIMER_MS));
const port = (min: 0 | 1) => z.int().check(z.minimum(min), z.maximum(65535));
const nonEmpty = () => z.string().check(z.minLength(1));

const TargetSpecSchema = z.strictObject({
  raw: nonEmpty(),
  host: nonEmpty(),
  port: port(1),
  weight: z.optional(z.int().check(z.minimum(1))),
  backup: z.optional(z.boolean()),
  maxConnections: z.optional(z.int().check(z.minimum(1))),
});

const OutlierDetectionSpecSchema = z.strictObject({
  consecutiveFailures: z.int().check(z.minimum(1)),
  ejectMs: ms(1),
  maxEjectMs: ms(1),
  maxEjectPercent: z.int().check(z.minimum(0), z.maximum(100)),
});

const RouteSpecSchema = z.strictObject({
  sni: z.array(nonEmpty()),
  alpn: z.array(nonEmpty()),
  targets: z.array(TargetSpecSchema),
});

const CertSpecSchema = z.strictObject({
  certPath: nonEmpty(),
  keyPath: nonEmpty(),
});

const TlsSpecSchema = z.strictObject({
  mode: z.enum(['passthrough', 'terminate']),
  certs: z.array(CertSpecSchema),
});

const HealthCheckSpecSchema = z.strictObject({
  intervalMs: ms(1),
  timeoutMs: ms(1),
  rise: z.int().check(z.minimum(1)),
  fall: z.int().check(z.minimum(1)),
  port: z.nullable(port(1)),
  send: z.nullable(z.string()),
  expect: z.nullable(z.string()),
  httpPath: z.nullable(z.string()),
  expectStatus: z.array(z.int()),
});

const PerSourceSpecSchema = z.strictObject({
  maxConnections: z.int().check(z.minimum(0)),
  ratePerSecond: z.number().check(z.minimum(0)),
  burst: z.int().check(z.minimum(1)),
  prefix6: z.int().check(z.minimum(0), z.maximum(128)),
});

const ListenerSpecShape = z.strictObject({
  app: nonEmpty(),
  // 0 = an ephemeral port (tests, `fproxy listen`, and an app's first worker when its config says 0).
  ports: z.array(port(0)).check(z.minLength(1)),
  listen: z.optional(z.array(nonEmpty())),
  targets: z.array(TargetSpecSchema),
  strategy: z.enum(STRATEGY_NAMES),
  outlierDetection: z.nullable(OutlierDetectionSpecSchema),
  onTargetDown: z.enum(['keep', 'close']),
  handOver: z.optional(z.boolean()),
  onTargetRemoved: z.optional(z.enum(['keep', 'close'])),
  connectTimeoutMs: ms(1),
  connectAttemptTimeoutMs: ms(1),
  idleTimeoutMs: ms(0),
  drainTimeoutMs: ms(0),
  handshakeTimeoutMs: ms(1),
  tls: z.optional(TlsSpecSchema),
  routes: z.array(RouteSpecSchema),
  acceptProxyProtocol: z.boolean(),
  sendProxyProtocol: z.enum(['none', 'v1', 'v2']),
  workers: z.int().check(z.minimum(1)),
  healthCheck: z.nullable(HealthCheckSpecSchema),
  allow: z.nullable(z.array(nonEmpty())),
  deny: z.array(nonEmpty()),
  maxConnections: z.int().check(z.minimum(0)),
  queueTimeoutMs: ms(0),
  perSource: z.nullable(PerSourceSpecSchema),
  maxConnectionDurationMs: ms(0),
  firstByteTimeoutMs: ms(0),
  accessLog: z.boolean(),
});

/**
 * Compile-time: schema S describes interface T exactly. A key in one and not the other shows up as
 * a missing property named after it; a type that differs, as an error on the `satisfies` line.
 */
type Mismatch<S extends z.ZodMiniType, T> = { [K in Exclude<keyof T, keyof z.output<S>> | Exclude<keyof z.output<S>, keyof T>]: 'in the interface but not the schema, or the reverse' };
type Same<S extends z.ZodMiniType, T> = z.output<S> extends T ? Mismatch<S, T> : { schemaOutputIsNot: T };
({}) satisfies Same<typeof TargetSpecSchema, TargetSpec>;
({}) satisfies Same<typeof RouteSpecSchema, RouteSpec>;
({}) satisfies Same<typeof CertSpecSchema, CertSpec>;
({}) satisfies Same<typeof TlsSpecSchema, TlsSpec>;
({}) satisfies Same<typeof HealthCheckSpecSchema, HealthCheckSpec>;
({}) satisfies Same<typeof OutlierDetectionSpecSchema, OutlierDetectionSpec>;
({}) satisfies Same<typeof PerSourceSpecSchema, PerSourceSpec>;
({}) satisfies Same<typeof ListenerSpecShape, ListenerSpec>;

/** Parses to a ListenerSpec as the interface says it (readonly arrays); sound by the checks above. */
export const ListenerSpecSchema = ListenerSpecShape as z.ZodMiniType<ListenerSpec>;
