// The OpenAPI 3.1 description of every admin endpoint, built from the contract's zod schemas (so
// the document and the runtime shapes cannot drift apart); openapi.test.ts checks real responses
// against the schemas of each operation here, and that every route the daemon serves is listed.
import { z } from 'zod';
import {
  ApplyResponseSchema, AppDocumentSchema, AppsResponseSchema, ConfigDocumentSchema, DrainResponseSchema, ProblemSchema, ReloadResponseSchema,
  StatusResponseSchema, TargetBodySchema,
} from './contract.ts';

export interface Operation {
  readonly method: 'get' | 'put' | 'post' | 'delete';
  /** OpenAPI style: /apps/{name}. */
  readonly path: string;
  readonly summary: string;
  readonly write: boolean;
  readonly body?: z.ZodType;
  /** Status → a JSON schema, 'problem' (problem+json), or the media type of a body sent as is ("text/plain"). */
  readonly responses: Readonly<Record<number, z.ZodType | 'problem' | `${string}/${string}`>>;
}

const WRITE = { 400: 'problem', 401: 'problem', 403: 'problem', 404: 'problem', 409: 'problem', 412: 'problem', 413: 'problem', 503: 'problem' } as const;
const RUNTIME = { 400: 'problem', 401: 'problem', 403: 'problem', 404: 'problem' } as const;

export const OPERATIONS: readonly Operation[] = [
  { method: 'get', path: '/healthz', summary: 'Liveness: "ok" while the daemon runs', write: false, responses: { 200: 'text/plain' } },
  { method: 'get', path: '/', summary: 'The dashboard page (polls GET /stats)', write: false, responses: { 200: 'text/html' } },
  { method: 'get', path: '/dashboard.js', summary: 'The dashboard\'s script', write: false, responses: { 200: 'text/javascript' } },
  { method: 'get', path: '/metrics', summary: 'Prometheus text format, pulled fresh from every listener', write: false, responses: { 200: 'text/plain' } },
  { method: 'get', path: '/stats', summary: 'Per app totals, rates, targets, history and the last rollouts (the dashboard\'s data)', write: false, responses: { 200: z.looseObject({ pid: z.int(), config: z.looseObject({}) }) } },
  { method: 'get', path: '/apps', summary: 'Every app: generation, state, pids, ports, targets and their health (a drained target shows state "drain")', write: false, responses: { 200: AppsResponseSchema } },
  { method: 'get', path: '/status', summary: 'The daemon: pid, config applied (hash, error), apps', write: false, responses: { 200: StatusResponseSchema } },
  { method: 'get', path: '/config', summary: 'The config document as stored, with ETag: "<hash>"', write: false, responses: { 200: ConfigDocumentSchema, 503: 'problem' } },
  { method: 'put', path: '/config', summary: 'Replace the whole config (validated, written through, applied)', write: true, body: ConfigDocumentSchema, responses: { 200: ApplyResponseSchema, ...WRITE } },
  { method: 'put', path: '/apps/{name}', summary: 'Create or replace one app (an element of Apps)', write: true, body: AppDocumentSchema, responses: { 200: ApplyResponseSchema, ...WRITE } },
  { method: 'delete', path: '/apps/{name}', summary: 'Remove an app: it drains and stops', write: true, responses: { 200: ApplyResponseSchema, ...WRITE } },
  { method: 'post', path: '/apps/{name}/targets', summary: 'Add a target to the app\'s Targets (409 if present)', write: true, body: TargetBodySchema, responses: { 200: ApplyResponseSchema, ...WRITE } },
  { method: 'delete', path: '/apps/{name}/targets/{address}', summary: 'Remove a target (address URL-encoded); open connections to it drain', write: true, responses: { 200: ApplyResponseSchema, ...WRITE } },
  { method: 'post', path: '/apps/{name}/targets/{address}/drain', summary: 'Operator drain: no new connections to the target, open ones continue. Runtime only (not written to the config); kept across rollouts', write: true, responses: { 200: DrainResponseSchema, ...RUNTIME } },
  { method: 'post', path: '/apps/{name}/targets/{address}/enable', summary: 'End an operator drain', write: true, responses: { 200: DrainResponseSchema, ...RUNTIME } },
  { method: 'post', path: '/reload', summary: 'Re-read the config now (as SIGHUP)', write: true, responses: { 200: ReloadResponseSchema, 401: 'problem', 403: 'problem' } },
  { method: 'get', path: '/openapi.json', summary: 'This document', write: false, responses: { 200: z.looseObject({ openapi: z.string() }) } },
];

let built: unknown;

export function openApiDocument(): unknown {
  built ??= build();
  return built;
}

/** Inlined (no $defs: in OpenAPI "#" is the document's root) and without its own $schema. */
function jsonSchema(schema: z.ZodType): unknown {
  const { $schema: _, ...rest } = z.toJSONSchema(schema, { target: 'draft-2020-12', unrepresentable: 'any', io: 'input', reused: 'inline', cycles: 'throw' }) as Record<string, unknown>;
  return rest;
}

function build(): unknown {
  const paths: Record<string, Record<string, unknown>> = {};
  for (const op of OPERATIONS) {
    const params = [...op.path.matchAll(/\{(\w+)\}/g)].map((m) => ({ name: m[1], in: 'path', required: true, schema: { type: 'string' } }));
    const responses: Record<string, unknown> = {};
    for (const [status, schema] of Object.entries(op.responses)) {
      if (typeof schema === 'string' && schema.includes('/')) responses[status] = { description: 'OK', content: { [schema]: { schema: { type: 'string' } } } };
      else if (schema === 'problem') responses[status] = { description: PROBLEM_TEXT[Number(status)] ?? 'Error', content: { 'application/problem+json': { schema: { $ref: '#/components/schemas/Problem' } } } };
      else responses[status] = { description: 'OK', content: { 'application/json': { schema: jsonSchema(schema as z.ZodType) } } };
    }
    paths[op.path] ??= {};
    paths[op.path]![op.method] = {
      summary: op.summary,
      ...(op.write ? { security: [{ bearer: [] }] } : {}),
      ...(params.length > 0 ? { parameters: params } : {}),
      ...(op.write && op.body !== undefined ? { requestBody: { required: true, content: { 'application/json': { schema: jsonSchema(op.body) } } } } : {}),
      ...(op.write && ['put', 'delete'].includes(op.method) || op.path.endsWith('/targets')
        ? { parameters: [...params, { name: 'If-Match', in: 'header', required: false, schema: { type: 'string' }, description: 'The ETag of GET /config; 412 when the config has changed since' }] }
        : {}),
      responses,
    };
  }
  return {
    openapi: '3.1.0',
    info: { title: 'fproxy admin API', version: '1', description: 'Reads are open; writes need Authorization: Bearer <FPROXY_ADMIN_TOKEN> (403 when no token is configured). Errors are RFC 9457 problem details.' },
    paths,
    components: {
      schemas: { Problem: jsonSchema(ProblemSchema) },
      securitySchemes: { bearer: { type: 'http', scheme: 'bearer' } },
    },
  };
}

const PROBLEM_TEXT: Record<number, string> = {
  400: 'Invalid JSON, an invalid config (every issue listed), or a target that is not host:port',
  401: 'Missing or wrong bearer token',
  403: 'Writes are disabled: no admin token configured',
  404: 'No such app or target',
  409: 'Target already present, or the rollout failed (the previous config was restored)',
  412: 'If-Match is not the current ETag',
  413: 'Body over 1 MiB',
  503: 'The config source cannot be read or written',
};
