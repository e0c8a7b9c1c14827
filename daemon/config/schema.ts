// The config schema (zod 4): the single source of truth for config.json's shape. Types are inferred
// from it and config.schema.json is generated from it (write-schema.ts), so every description
// here, defaults included, is what editors show. Keys are PascalCase as in the original format.
// Invariants: objects are strict (unknown keys are errors, see validate.ts for "did you mean");
// optional keys carry no zod default, so the frozen config is what the user wrote and the
// defaults live in one place, SPEC_DEFAULTS, applied by to-spec.ts. Rules that span several keys
// or apps (targets-or-routes, duplicate ports, SNI overlap) are in rules.ts; the JSON Schema
// versions of the per-app ones are added with .meta() so editors flag them too.
import { z } from 'zod';
import { cidrProblem, HEALTH_CHECK_DEFAULTS, OUTLIER_DEFAULTS, SPEC_DEFAULTS, STRATEGY_NAMES, parseTarget } from '../../proxy/index.ts';
import { listenAddressProblem, sniNameProblem } from './host-name.ts';

const PORT_RANGE = (iss: { input?: unknown }) => `port ${String(iss.input)} is outside 0–65535 (0: a free port the kernel picks)`;

/** 0 = a free port the kernel picks when the app first starts, kept by every worker and generation while the daemon runs. */
const Port = z.int().min(0, { error: PORT_RANGE }).max(65535, { error: PORT_RANGE });

const PROBE_PORT_RANGE = (iss: { input?: unknown }) => `port ${String(iss.input)} is outside 1–65535`;
/** A port to connect to (never 0). */
const RemotePort = z.int().min(1, { error: PROBE_PORT_RANGE }).max(65535, { error: PROBE_PORT_RANGE });

const ListenAddress = z
  .string()
  .superRefine((raw, ctx) => {
    const problem = listenAddressProblem(raw);
    if (problem) ctx.addIssue({ code: 'custom', message: problem, input: raw });
  })
  .meta({ description: 'An IPv4 or IPv6 address of this machine to bind the app\'s ports on, as "127.0.0.1" or "::1".' });

const Cidr = z
  .string()
  .superRefine((raw, ctx) => {
    const problem = cidrProblem(raw);
    if (problem) ctx.addIssue({ code: 'custom', message: problem, input: raw });
  })
  .meta({ description: 'An IPv4 or IPv6 address or CIDR range: "10.0.0.0/8", "192.0.2.7", "2001:db8::/32". IPv4 ranges also match IPv4-mapped IPv6 clients.' });

/** Node's longest timer: a bigger delay fires at once (with a warning), so it is rejected here. */
const MAX_TIMER_MS = 2_147_483_647;

function millis(min: 0 | 1, description: string) {
  return z
    .int()
    .min(min)
    .max(MAX_TIMER_MS, { error: (iss) => `must be at most ${MAX_TIMER_MS} (about 24.8 days, the longest timer Node supports), got ${String(iss.input)}` })
    .optional()
    .meta({ description });
}

const TargetAddress = z
  .string()
  .superRefine((raw, ctx) => {
    const parsed = parseTarget(raw);
    if (!parsed.ok) ctx.addIssue({ code: 'custom', message: parsed.reason, input: raw });
  })
  .meta({ description: 'Where to send connections: "host:port" or "[ipv6]:port", as in "db.internal:5432" or "[::1]:9000".' });

/** Upper bound on Weight: source-hash places 100 ring points per unit of weight. */
export const MAX_WEIGHT = 100;

export const TargetObjectSchema = z
  .strictObject({
    Address: TargetAddress,
    Weight: z.int().min(1).max(MAX_WEIGHT).optional().meta({
      description: `Relative share of new connections (1–${MAX_WEIGHT}) for round-robin, least-connections, random-two and source-hash. Default 1.`,
    }),
    Backup: z.boolean().optional().meta({ description: 'Send connections here only when no primary (non-backup) target of the pool is usable. Default false.' }),
    MaxConnections: z.int().min(1).optional().meta({
      description:
        'Concurrent connections to this target per listener process (per worker). A full target is skipped like an unhealthy one; ' +
        'when every target of the pool is full, QueueTimeoutMs holds the connection for a free slot, else it is refused. Default no limit.',
    }),
  })
  .meta({ description: 'A target with options.' });

const TARGET_SHAPE = '"host:port" or an object such as {"Address": "host:port", "Weight": 2, "Backup": true}';

const Target = z.union([TargetAddress, TargetObjectSchema], {
  error: (iss) => {
    const input = iss.input as unknown;
    if (typeof input === 'object' && input !== null && !Array.isArray(input) && !('Address' in input)) {
      return `target object has no "Address": write it as ${TARGET_SHAPE}`;
    }
    return `a target must be ${TARGET_SHAPE}`;
  },
});

const Targets = z.array(Target);

export const OutlierDetectionSchema = z
  .strictObject({
    ConsecutiveFailures: z.int().min(1).max(1000).optional().meta({
      description: `Failed connect attempts in a row (refused, unreachable, timed out, DNS) that eject a target. Default ${OUTLIER_DEFAULTS.consecutiveFailures}.`,
    }),
    EjectMs: millis(1, `How long a target is ejected the first time, in ms; doubled for each ejection in a row. Default ${OUTLIER_DEFAULTS.ejectMs}.`),
    MaxEjectMs: millis(1, `Cap on the doubled ejection time, in ms. Default ${OUTLIER_DEFAULTS.maxEjectMs}.`),
    MaxEjectPercent: z.int().min(0).max(100).optional().meta({
      description: `Most of a pool that may be ejected at once, in percent (at least one target unless 0). When every target is ejected or down the pool uses all of them (panic). Default ${OUTLIER_DEFAULTS.maxEjectPercent}.`,
    }),
  })
  .meta({ description: 'Passive health settings.' });

const SniName = z
  .string()
  .superRefine((name, ctx) => {
    const problem = sniNameProblem(name);
    if (problem) ctx.addIssue({ code: 'custom', message: problem, input: name });
  })
  .meta({ description: 'A host name ("a.example.test") or a leading wildcard ("*.example.test"); case-insensitive.' });

export const CertSchema = z
  .strictObject({
    Cert: z.string().min(1).meta({ description: 'PEM certificate (chain) file, relative to the config file\'s directory.' }),
    Key: z.string().min(1).meta({ description: 'Unencrypted PEM private key file for Cert, relative to the config file\'s directory.' }),
  })
  .meta({ description: 'One certificate and its key.' });

export const TlsSchema = z
  .strictObject({
    Mode: z.enum(['passthrough', 'terminate']).meta({
      description:
        '"passthrough": read the SNI from the ClientHello and forward the encrypted bytes untouched. ' +
        '"terminate": complete the TLS handshake here and forward plaintext to the targets.',
    }),
    Certs: z.array(CertSchema).min(1).optional().meta({
      description: 'Mode "terminate" only, and required there. The first is the default certificate (sent when no other matches the SNI).',
    }),
  })
  .meta({
    description: 'Makes this a TLS app. Absent = plain TCP.',
    if: { required: ['Mode'], properties: { Mode: { const: 'terminate' } } },
    then: { required: ['Certs'] },
    else: { not: { required: ['Certs'] } },
  });

export const HealthCheckSchema = z
  .strictObject({
    IntervalMs: z
      .int()
      .min(100, { error: (iss) => `must be at least 100 ms (a probe per target per interval), got ${String(iss.input)}` })
      .max(MAX_TIMER_MS, { error: (iss) => `must be at most ${MAX_TIMER_MS}, got ${String(iss.input)}` })
      .meta({ description: 'Time between two probes of one target, in ms (at least 100). Each target is probed once per interval, whatever Workers is.' }),
    TimeoutMs: millis(1, `A probe not finished within this fails, in ms; at most IntervalMs. Default ${HEALTH_CHECK_DEFAULTS.timeoutMs} (or IntervalMs if smaller).`),
    Rise: z.int().min(1).max(100).optional().meta({ description: `Consecutive successful probes that make a target up. Default ${HEALTH_CHECK_DEFAULTS.rise}.` }),
    Fall: z.int().min(1).max(100).optional().meta({ description: `Consecutive failed probes that make a target down (no new connections). Default ${HEALTH_CHECK_DEFAULTS.fall}.` }),
    Port: RemotePort.optional().meta({ description: 'Probe this port instead of the target\'s own (a management port, as Patroni\'s REST API on 8008). Default: the target\'s port.' }),
    Send: z.string().min(1).max(4096).optional().meta({ description: 'Bytes (UTF-8) to send once connected, as "PING\\r\\n". Not with HttpPath.' }),
    Expect: z.string().min(1).max(4096).optional().meta({ description: 'Healthy only when the reply (to Send, or the banner without Send) contains this text. Not with HttpPath.' }),
    HttpPath: z
      .string()
      .regex(/^\/[\x21-\x7e]*$/, { error: (iss) => `must start with "/" and contain no spaces or control characters, got ${JSON.stringify(iss.input)}` })
      .max(2048)
      .optional()
      .meta({ description: 'HTTP check: sends "GET <HttpPath> HTTP/1.1" with Host and "Connection: close"; healthy on ExpectStatus. Not with Send/Expect.' }),
    ExpectStatus: z
      .array(z.int().min(100).max(599))
      .min(1)
      .optional()
      .meta({ description: 'HttpPath only: the HTTP statuses that count as healthy, as [200]. Default: any 2xx.' }),
  })
  .meta({
    description: 'Active health checks (off when absent): a TCP connect, Send/Expect, or an HTTP GET per target per interval. Down targets get no new connections.',
    allOf: [{ not: { required: ['HttpPath', 'Send'] } }, { not: { required: ['HttpPath', 'Expect'] } }],
    dependentRequired: { ExpectStatus: ['HttpPath'] },
  });

export const RouteSchema = z
  .strictObject({
    Sni: z.array(SniName).min(1).meta({ description: 'Server names this route matches. Exact names win over wildcards; the longest wildcard wins.' }),
    Alpn: z
      .array(z.string().min(1).max(255))
      .optional()
      .meta({ description: 'ALPN protocol ids (as "h2", "http/1.1"); the route matches only clients offering one of them. Default: any.' }),
    Targets: Targets.min(1).meta({ description: 'Target pool for connections this route matches, balanced by the app\'s Strategy.' }),
  })
  .meta({ description: 'Sends TLS connections whose SNI (and ALPN) match to their own target pool.' });

export const PerSourceSchema = z
  .strictObject({
    MaxConnections: z.int().min(0).optional().meta({ description: 'Concurrent connections per source, across every worker. 0 or absent = no limit.' }),
    RatePerSecond: z.number().min(0).max(1_000_000).optional().meta({ description: 'New connections per second per source (token bucket), across every worker. 0 or absent = no limit.' }),
    Burst: z.int().min(1).max(1_000_000).optional().meta({ description: 'Token bucket size: how many connections a source may open at once before RatePerSecond applies. Default: RatePerSecond (at least 1).' }),
    Prefix6: z.int().min(1).max(128).optional().meta({ description: 'IPv6 clients count per network of this prefix length (one host usually owns a /64). Default 64.' }),
  })
  .meta({ description: 'Limits per client source (an IPv4 address, or an IPv6 /Prefix6 network). Over a limit: RST, counted as over-limit or rate-limited.' });

export const AppSchema = z
  .strictObject({
    Name: z
      .string()
      .min(1)
      .max(64)
      .regex(/^[A-Za-z0-9._-]+$/, {
        error: (iss) => `app name "${String(iss.input)}" may only contain letters, digits, ".", "_" and "-"`,
      })
      .meta({ description: 'Unique app name (1–64 of A–Z a–z 0–9 . _ -), used in logs, status and errors.' }),
    Ports: z.array(Port).min(1).meta({
      description: 'Ports to listen on, on every interface (IPv4 and IPv6). No port may appear twice, in this app or another. 0: a free port the kernel picks when the app first starts, kept by every worker and every later generation of the app while the daemon runs (GET /apps shows it).',
    }),
    Targets: Targets.optional().meta({
      description: 'Default target pool, balanced by Strategy. Required and non-empty unless the app has Routes (then it is the pool for connections no route matches, and may be empty).',
    }),
    Listen: z
      .array(ListenAddress)
      .min(1, { error: 'is empty: add an address such as "127.0.0.1", or remove Listen to listen on every interface' })
      .optional()
      .meta({
        description: 'Addresses to bind the app\'s Ports on, as ["127.0.0.1", "::1"]. Default: every interface (IPv4 and IPv6). An address this machine does not have fails at bind (ERR_BIND EADDRNOTAVAIL).',
        uniqueItems: true,
      }),
    ConnectTimeoutMs: millis(1, `Whole budget for reaching some target, retries on the next targets included, in ms. Default ${SPEC_DEFAULTS.connectTimeoutMs}.`),
    ConnectAttemptTimeoutMs: millis(1, `Cap on one connect attempt, in ms (never more than what is left of ConnectTimeoutMs). Default ${SPEC_DEFAULTS.connectAttemptTimeoutMs}.`),
    IdleTimeoutMs: millis(0, `Close a connection after this long with no bytes either way, in ms. 0 = never. Default ${SPEC_DEFAULTS.idleTimeoutMs} (1 hour).`),
    DrainTimeoutMs: millis(0, `On reload or stop, how long open connections may finish before they are closed, in ms. 0 = close at once. Default ${SPEC_DEFAULTS.drainTimeoutMs}.`),
    HandshakeTimeoutMs: millis(1, `Time allowed to receive the PROXY header and the whole TLS ClientHello, in ms. Default ${SPEC_DEFAULTS.handshakeTimeoutMs}.`),
    Strategy: z.enum(STRATEGY_NAMES).optional().meta({
      description:
        `How each pool picks among its usable targets. Default "${SPEC_DEFAULTS.strategy}" (smooth weighted, as nginx). ` +
        '"least-connections": fewest open connections per unit of weight. "random-two": the less loaded of two random targets. ' +
        '"source-hash": the same client address keeps its target while it is usable (consistent hashing). "first": the first usable target in order (active/standby). ' +
        'Connection counts are per listener process (worker).',
    }),
    OutlierDetection: z.union([z.literal(false), OutlierDetectionSchema], {
      error: () => 'must be false (off) or an object such as {"ConsecutiveFailures": 3, "EjectMs": 10000}; leave it out for the defaults',
    }).optional().meta({
      description:
        `Passive health, on by default: a target whose connect attempts fail ${OUTLIER_DEFAULTS.consecutiveFailures} times in a row gets no new connections for ${OUTLIER_DEFAULTS.ejectMs} ms, ` +
        'doubled for each ejection in a row; afterwards its first attempt decides. false = off.',
    }),
    OnTargetDown: z.enum(['keep', 'close']).optional().meta({
      description: `When active health checks mark a target down: "keep" its open connections, or "close" (reset) them. Default "${SPEC_DEFAULTS.onTargetDown}".`,
    }),
    HandOver: z.boolean().optional().meta({
      description: `When a rollout replaces the app's listeners, move its established plain TCP and TLS passthrough connections to the new ones instead of draining them (up to DrainTimeoutMs). Default ${SPEC_DEFAULTS.handOver}.`,
    }),
    OnTargetRemoved: z.enum(['keep', 'close']).optional().meta({
      description: `A connection handed over to a new generation whose config no longer lists its target: "keep" it (it stays on that upstream) or "close" it. Default "${SPEC_DEFAULTS.onTargetRemoved}".`,
    }),
    Workers: z.int().min(1).max(64).optional().meta({
      description: 'Listener processes for this app, sharing its ports with SO_REUSEPORT (1–64). Default: the number of CPUs (at most 64).',
    }),
    Tls: TlsSchema.optional(),
    Routes: z.array(RouteSchema).min(1).optional().meta({
      description: 'SNI routes, tried before the default Targets. Requires Tls. A name may appear in two routes only if their Alpn lists do not overlap.',
    }),
    AcceptProxyProtocol: z.boolean().optional().meta({
      description: `Expect a PROXY protocol v1 or v2 header from every client (as behind another load balancer). Default ${SPEC_DEFAULTS.acceptProxyProtocol}.`,
    }),
    SendProxyProtocol: z.enum(['v1', 'v2']).optional().meta({
      description: 'Send a PROXY protocol header of this version to the targets, carrying the client\'s address. Absent = none.',
    }),
    HealthCheck: HealthCheckSchema.optional(),
    Allow: z.array(Cidr).optional().meta({
      description: 'Only clients in these ranges get in (checked on the real client address, after a PROXY header). Absent = everyone. An empty list refuses everyone. Refused clients get a RST.',
    }),
    Deny: z.array(Cidr).optional().meta({ description: 'Clients in these ranges are refused with a RST; Deny wins over Allow.' }),
    MaxConnections: z.int().min(0).optional().meta({
      description: 'Concurrent connections of the whole app (every worker and generation together). Over it: RST, or a wait of up to QueueTimeoutMs. 0 or absent = no limit.',
    }),
    QueueTimeoutMs: millis(0, 'Over MaxConnections (or with every target of the pool at its own MaxConnections), hold a new connection (not read, not connected) up to this long for a free slot, then RST. 0 = refuse at once. Default 0.'),
    PerSource: PerSourceSchema.optional(),
    MaxConnectionDurationMs: millis(0, 'Close connections older than this, in ms. 0 or absent = never.'),
    FirstByteTimeoutMs: millis(0, 'Plain TCP apps: close a client that sent nothing this long after connecting, in ms. 0 or absent = never (server-speaks-first protocols such as SMTP or MySQL are normal). TLS and PROXY apps use HandshakeTimeoutMs.'),
    AccessLog: z.boolean().optional().meta({
      description: `One JSON line per closed connection (client, sni, alpn, target, endpoint, attempts, outcome, code, bytes, timings), at info on stdout, or in the file FPROXY_ACCESS_LOG names. Default ${SPEC_DEFAULTS.accessLog}.`,
    }),
  })
  .meta({
    description: 'One app: a set of ports proxied to a set of targets, served by its own listener processes.',
    anyOf: [{ required: ['Targets'], properties: { Targets: { minItems: 1 } } }, { required: ['Routes'] }],
    dependentRequired: { Routes: ['Tls'] },
  });

export const ConfigSchema = z
  .strictObject({
    $schema: z.string().optional().meta({ description: 'Path or URL of this JSON Schema, so editors validate as you type: "./config.schema.json".' }),
    Apps: z.array(AppSchema).meta({ description: 'The apps to serve. Names and ports are unique across apps.' }),
  })
  .meta({ title: 'fproxy config', description: 'fproxy configuration (config.json).' });

export type Config = z.infer<typeof ConfigSchema>;
export type AppConfig = z.infer<typeof AppSchema>;
export type TlsConfig = z.infer<typeof TlsSchema>;
export type RouteConfig = z.infer<typeof RouteSchema>;
export type HealthCheckConfig = z.infer<typeof HealthCheckSchema>;
export type TargetConfig = z.infer<typeof Target>;
export type PerSourceConfig = z.infer<typeof PerSourceSchema>;
