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
  /** Only "round-robin" for now. */
  readonly strategy: 'round-robin';
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
  /** Listener processes for this app (SO_REUSEPORT group). Default: number of CPUs. */
  readonly workers: number;
}

export const SPEC_DEFAULTS = {
  strategy: 'round-robin',
  connectTimeoutMs: 5000,
  connectAttemptTimeoutMs: 2000,
  idleTimeoutMs: 3_600_000,
  drainTimeoutMs: 30_000,
  handshakeTimeoutMs: 5000,
  acceptProxyProtocol: false,
  sendProxyProtocol: 'none',
} as const;

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

const ListenerSpecShape = z.strictObject({
  app: nonEmpty(),
  // 0 = an ephemeral port (tests, `fproxy listen`); the daemon always sends real ones.
  ports: z.array(port(0)).check(z.minLength(1)),
  // IP literals (the config schema says which); optional so a spec without it means every interface.
  listen: z.optional(z.array(nonEmpty())),
  targets: z.array(TargetSpecSchema),
  strategy: z.literal('round-robin'),
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
({}) satisfies Same<typeof ListenerSpecShape, ListenerSpec>;

/** Parses to a ListenerSpec as the interface says it (readonly arrays); sound by the checks above. */
export const ListenerSpecSchema = ListenerSpecShape as z.ZodMiniType<ListenerSpec>;
