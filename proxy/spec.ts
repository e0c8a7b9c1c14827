// ListenerSpec: everything one listener process needs to serve one app generation.
// The daemon maps an app's validated config to this (daemon/config/to-spec.ts); the listener
// never sees config.json. Plain JSON only: it crosses the IPC channel as is.

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
  /** Ports to bind on every interface (IPv4 and IPv6), all with SO_REUSEPORT. */
  readonly ports: readonly number[];
  /** Default target pool. May be empty on a TLS app whose routes cover every name. */
  readonly targets: readonly TargetSpec[];
  /** How a pool picks among its usable targets. Default "round-robin". */
  readonly strategy: StrategySpec;
  /** Passive health: eject a target after consecutive failed attempts. Default on (OUTLIER_DEFAULTS); null = off. */
  readonly outlierDetection: OutlierDetectionSpec | null;
  /** "close": reset open connections to a target when active checks mark it down. Default "keep". */
  readonly onTargetDown: 'keep' | 'close';
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
  connectTimeoutMs: 5000,
  connectAttemptTimeoutMs: 2000,
  idleTimeoutMs: 3_600_000,
  drainTimeoutMs: 30_000,
  handshakeTimeoutMs: 5000,
  acceptProxyProtocol: false,
  sendProxyProtocol: 'none',
} as const;

/** Parse "host:port" or "[v6]:port". Returns undefined when malformed (the schema reports why). */
export function parseTarget(raw: string): TargetSpec | undefined {
  let host: string;
  let portText: string;
  if (raw.startsWith('[')) {
    const close = raw.indexOf(']');
    if (close < 0 || raw[close + 1] !== ':') return undefined;
    host = raw.slice(1, close);
    portText = raw.slice(close + 2);
    if (!host.includes(':')) return undefined;
  } else {
    const colon = raw.lastIndexOf(':');
    if (colon <= 0 || raw.indexOf(':') !== colon) return undefined;
    host = raw.slice(0, colon);
    portText = raw.slice(colon + 1);
  }
  if (!/^[0-9]{1,5}$/.test(portText)) return undefined;
  const port = Number(portText);
  if (port < 1 || port > 65535) return undefined;
  return { raw, host, port };
}
