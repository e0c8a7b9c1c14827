// The config schema (zod 4): the single source of truth for config.json's shape. Types are inferred
// from it and config.schema.json is generated from it (write-schema.ts), so every description
// here, defaults included, is what editors show. Keys are PascalCase as in the original format.
// Invariants: objects are strict (unknown keys are errors, see validate.ts for "did you mean");
// optional keys carry no zod default, so the frozen config is what the user wrote and the
// defaults live in one place, SPEC_DEFAULTS, applied by to-spec.ts. Rules that span several keys
// or apps (targets-or-routes, duplicate ports, SNI overlap) are in rules.ts; the JSON Schema
// versions of the per-app ones are added with .meta() so editors flag them too.
import { z } from 'zod';
import { SPEC_DEFAULTS } from '../../proxy/spec.ts';
import { sniNameProblem, targetProblem } from './host-name.ts';

const PORT_RANGE = (iss: { input?: unknown }) => `port ${String(iss.input)} is outside 1–65535`;

const Port = z.int().min(1, { error: PORT_RANGE }).max(65535, { error: PORT_RANGE });

const Target = z
  .string()
  .superRefine((raw, ctx) => {
    const problem = targetProblem(raw);
    if (problem) ctx.addIssue({ code: 'custom', message: problem, input: raw });
  })
  .meta({ description: 'Where to send connections: "host:port" or "[ipv6]:port", as in "db.internal:5432" or "[::1]:9000".' });

const Targets = z.array(Target);

const SniName = z
  .string()
  .superRefine((name, ctx) => {
    const problem = sniNameProblem(name);
    if (problem) ctx.addIssue({ code: 'custom', message: problem, input: name });
  })
  .meta({ description: 'A host name ("a.example.test") or a leading wildcard ("*.example.test"); case-insensitive.' });

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

export const RouteSchema = z
  .strictObject({
    Sni: z.array(SniName).min(1).meta({ description: 'Server names this route matches. Exact names win over wildcards; the longest wildcard wins.' }),
    Alpn: z
      .array(z.string().min(1).max(255))
      .optional()
      .meta({ description: 'ALPN protocol ids (as "h2", "http/1.1"); the route matches only clients offering one of them. Default: any.' }),
    Targets: Targets.min(1).meta({ description: 'Target pool for connections this route matches, balanced round-robin.' }),
  })
  .meta({ description: 'Sends TLS connections whose SNI (and ALPN) match to their own target pool.' });

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
      description: 'Ports to listen on, on every interface (IPv4 and IPv6). No port may appear twice, in this app or another.',
      uniqueItems: true,
    }),
    Targets: Targets.optional().meta({
      description: 'Default target pool, balanced round-robin. Required and non-empty unless the app has Routes (then it is the pool for connections no route matches, and may be empty).',
    }),
    ConnectTimeoutMs: millis(1, `Whole budget for reaching some target, retries on the next targets included, in ms. Default ${SPEC_DEFAULTS.connectTimeoutMs}.`),
    ConnectAttemptTimeoutMs: millis(1, `Cap on one connect attempt, in ms (never more than what is left of ConnectTimeoutMs). Default ${SPEC_DEFAULTS.connectAttemptTimeoutMs}.`),
    IdleTimeoutMs: millis(0, `Close a connection after this long with no bytes either way, in ms. 0 = never. Default ${SPEC_DEFAULTS.idleTimeoutMs} (1 hour).`),
    DrainTimeoutMs: millis(0, `On reload or stop, how long open connections may finish before they are closed, in ms. 0 = close at once. Default ${SPEC_DEFAULTS.drainTimeoutMs}.`),
    HandshakeTimeoutMs: millis(1, `Time allowed to receive the PROXY header and the whole TLS ClientHello, in ms. Default ${SPEC_DEFAULTS.handshakeTimeoutMs}.`),
    Strategy: z.literal(SPEC_DEFAULTS.strategy).optional().meta({ description: `Load-balancing strategy. Default "${SPEC_DEFAULTS.strategy}" (the only one for now).` }),
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
