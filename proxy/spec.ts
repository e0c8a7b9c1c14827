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
  /** One info line per closed connection (proxy/access-log.ts). Default false. */
  readonly accessLog: boolean;
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
  accessLog: false,
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
