// The admin API's contract: every request body and response shape, as zod schemas (validated at
// runtime where a request comes in, and turned into the OpenAPI document by openapi.ts), in one
// file as proxy/ipc/protocol.ts is for IPC. Errors are RFC 9457 problem details
// (application/problem+json) with a stable `code` and, for config problems, every issue.
// Invariants: a write answers 200 only once its content is applied; 4xx/5xx never change the
// config; the shapes of GET /healthz, /apps, /status are the daemon's (AppStatus, DaemonStatus).
import { z } from 'zod';
import { TargetObjectSchema } from '../config/schema.ts';

/** Largest request body read (PUT /config); a bigger one is refused (413) without reading it. */
export const MAX_BODY_BYTES = 1024 * 1024;
/** A client that has not sent its whole request by then gets 408 and the connection closed. */
export const REQUEST_TIMEOUT_MS = 10_000;

export const IssueSchema = z.object({
  path: z.string().meta({ description: 'Where, as "Apps[1].Ports[0]"; "" = the whole document.' }),
  message: z.string(),
  line: z.int().optional(),
  column: z.int().optional(),
});

export const ProblemSchema = z
  .object({
    type: z.string().meta({ description: 'A URI naming the problem: "urn:fproxy:problem:<code>".' }),
    title: z.string(),
    status: z.int(),
    detail: z.string(),
    code: z.string().meta({ description: 'Stable error code, as ERR_CONFIG_INVALID.' }),
    issues: z.array(IssueSchema).optional().meta({ description: 'Every config problem (400 ERR_CONFIG_INVALID / ERR_JSON).' }),
    routes: z.array(z.string()).optional().meta({ description: '404 ERR_NOT_FOUND: every route served, as "POST /apps/:name/targets".' }),
    failed: z.array(z.object({ app: z.string(), message: z.string() })).optional().meta({ description: '409 ERR_ROLLOUT_FAILED: each app that failed and why.' }),
  })
  .meta({ description: 'RFC 9457 problem details.' });
export type Problem = z.infer<typeof ProblemSchema>;

export const ApplyResponseSchema = z
  .object({
    applied: z.literal(true),
    hash: z.string().meta({ description: 'sha256 (hex) of the config now applied: the ETag of GET /config.' }),
    apps: z.record(z.string(), z.object({ generation: z.int() })).meta({ description: 'Every app started or rolled out by this write, with the generation now serving.' }),
    stopped: z.array(z.string()).meta({ description: 'Apps this write removed (they drain and stop).' }),
  })
  ;
export type ApplyResponse = z.infer<typeof ApplyResponseSchema>;

/** POST /apps/{name}/targets: a target object as in the config (`Address` required). */
export const TargetBodySchema = TargetObjectSchema;

export const DrainResponseSchema = z
  .object({
    app: z.string(),
    target: z.string(),
    drain: z.boolean().meta({ description: 'true: no new connections to the target (open ones continue); runtime only, not written to the config.' }),
  })
  ;
export type DrainResponse = z.infer<typeof DrainResponseSchema>;

export const ReloadResponseSchema = z
  .object({
    reloaded: z.literal(true),
    hash: z.string().nullable().meta({ description: 'The config applied after the reload (null: none fully applied).' }),
    error: z.object({ code: z.string(), message: z.string() }).nullable().meta({ description: 'The config was rejected: the running config is kept.' }),
  })
  ;
export type ReloadResponse = z.infer<typeof ReloadResponseSchema>;

const TargetHealthSchema = z.object({
  target: z.string(),
  state: z.enum(['up', 'down', 'ejected', 'drain', 'unknown']),
  since: z.string(),
  lastError: z.string().nullable(),
  activeConnections: z.int(),
});

export const AppStatusSchema = z
  .looseObject({
    name: z.string(),
    generation: z.int(),
    state: z.enum(['starting', 'running', 'rolling-out', 'draining', 'failed']),
    pids: z.array(z.int()),
    ports: z.array(z.int()),
    targets: z.array(z.string()),
    activeConnections: z.int(),
    currentError: z.looseObject({ code: z.string(), message: z.string() }).nullable(),
    health: z.array(TargetHealthSchema),
    panic: z.boolean(),
  })
  ;

export const AppsResponseSchema = z.array(AppStatusSchema);

export const StatusResponseSchema = z
  .looseObject({
    pid: z.int(),
    config: z.looseObject({ path: z.string(), hash: z.string().nullable(), appliedAt: z.string().nullable(), error: z.looseObject({ code: z.string(), message: z.string() }).nullable() }),
    reconciles: z.int(),
    logLinesDropped: z.int(),
    apps: z.array(AppStatusSchema),
  })
  ;

/** GET /config: the document as stored (any JSON object; PUT /config validates it as config.schema.json says). */
export const ConfigDocumentSchema = z.looseObject({ Apps: z.array(z.looseObject({ Name: z.string() })) }).meta({ description: 'The whole config, as config.schema.json describes it.' });

/** One app object, as an element of Apps[] (validated with the config schema on write). */
export const AppDocumentSchema = z.looseObject({ Name: z.string() }).meta({ description: 'One app, as an element of Apps[] in config.schema.json.' });
