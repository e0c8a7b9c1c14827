// Router: the admin endpoint's request handling — route matching (`/apps/:name/targets/:address`,
// segments URL-decoded), bodies (at most MAX_BODY_BYTES: a bigger Content-Length is refused
// before a byte of it is read, a chunked body is cut off when it passes the limit), bearer-token
// auth for writes, async handlers, and RFC 9457 problem+json for every error.
// Invariants: a handler's thrown AdminError becomes its problem response; anything else thrown
// is a 500 ERR_INTERNAL that names the error; one response per request; a write route is
// authorized before its body is read.
import type { IncomingMessage, ServerResponse } from 'node:http';
import { MAX_BODY_BYTES } from './contract.ts';
import type { Problem } from './contract.ts';
import { parseJsonText } from '../config/json-text.ts';
import type { AdminAuth } from './admin-auth.ts';

export interface Request {
  readonly method: string;
  readonly path: string;
  readonly params: Readonly<Record<string, string>>;
  readonly headers: IncomingMessage['headers'];
  /** The body, at most MAX_BODY_BYTES (else AdminError 413). */
  body(): Promise<Buffer>;
  /** The body as JSON (AdminError 400 ERR_JSON with line and column when it is not). */
  json(): Promise<unknown>;
  /** The raw response, for a handler that streams (server-sent events): it writes it and returns HANDLED. */
  readonly res: ServerResponse;
}

/** Returned by a handler that has answered through `req.res` itself. */
export const HANDLED: unique symbol = Symbol('handled');

/** A handler's full answer (a handler may also return a bare JSON value or string: 200). */
export class Reply {
  readonly status: number;
  readonly headers: Readonly<Record<string, string>>;
  /**
   * A Buffer, or a string with a content-type header: sent as is. Another string: text/plain with
   * a newline added. Anything else: JSON.
   */
  readonly body: unknown;

  constructor(body: unknown, status = 200, headers: Record<string, string> = {}) {
    this.body = body;
    this.status = status;
    this.headers = headers;
  }
}

export type Handler = (req: Request) => unknown;

export interface Route {
  readonly method: 'GET' | 'PUT' | 'POST' | 'DELETE';
  /** "/apps/:name/targets/:address/drain": `:x` matches one segment, decoded into params.x. */
  readonly path: string;
  /** Needs `Authorization: Bearer <token>` (every write does). */
  readonly auth?: boolean;
  readonly handler: Handler;
}

/** A response body sent as is (HTML, a script, Prometheus text) instead of JSON. */
export class RawBody {
  readonly contentType: string;
  readonly body: string | Buffer;
  constructor(contentType: string, body: string | Buffer) {
    this.contentType = contentType;
    this.body = body;
  }
}

export class AdminError extends Error {
  readonly status: number;
  readonly code: string;
  readonly title: string;
  readonly extra: Readonly<Record<string, unknown>>;
  readonly headers: Readonly<Record<string, string>>;

  constructor(status: number, code: string, title: string, detail: string, options: { extra?: Record<string, unknown>; headers?: Record<string, string>; cause?: unknown } = {}) {
    super(detail, options.cause === undefined ? undefined : { cause: options.cause });
    this.name = 'AdminError';
    this.status = status;
    this.code = code;
    this.title = title;
    this.extra = options.extra ?? {};
    this.headers = options.headers ?? {};
  }
}

export class Router {
  readonly #routes: { route: Route; segments: string[] }[] = [];
  readonly #auth: AdminAuth;

  constructor(auth: AdminAuth) {
    this.#auth = auth;
  }

  add(route: Route): this {
    this.#routes.push({ route, segments: route.path.split('/').slice(1) });
    return this;
  }

  /** A plain GET route, as the old table's entries: `router.get('/apps', () => status)`. */
  get(path: string, handler: Handler): this {
    return this.add({ method: 'GET', path, handler });
  }

  paths(): string[] {
    return [...new Set(this.#routes.map((r) => r.route.path))];
  }

  /** "GET /apps", "POST /apps/:name/targets" …: every route, for 404s (and the OpenAPI coverage test). */
  routes(): string[] {
    return this.#routes.map((r) => `${r.route.method} ${r.route.path}`);
  }

  async handle(req: IncomingMessage, res: ServerResponse): Promise<void> {
    const path = (req.url ?? '/').split('?')[0]!;
    try {
      const out = await this.#dispatch(req, res, path);
      if (out !== undefined) send(res, out);
    } catch (err) {
      sendProblem(res, err);
      if (err instanceof AdminError && err.status === 413 && !req.readableEnded) linger(req, res);
    }
  }

  async #dispatch(req: IncomingMessage, res: ServerResponse, path: string): Promise<Reply | undefined> {
    const method = req.method === 'HEAD' ? 'GET' : (req.method ?? 'GET');
    const parts = path.split('/').slice(1);
    const allowed: string[] = [];
    for (const { route, segments } of this.#routes) {
      const params = match(segments, parts);
      if (params === undefined) continue;
      if (route.method !== method) {
        allowed.push(route.method);
        continue;
      }
      if (route.auth) this.#auth.check(req.headers.authorization);
      const request = makeRequest(req, res, method, path, params);
      const out = await route.handler(request);
      if (out === HANDLED) return undefined;
      return out instanceof Reply ? out : new Reply(out);
    }
    if (allowed.length > 0) {
      throw new AdminError(405, 'ERR_METHOD', 'Method not allowed', `${req.method} ${path} is not allowed; use ${allowed.join(' or ')}`, { headers: { allow: allowed.join(', ') } });
    }
    throw new AdminError(404, 'ERR_NOT_FOUND', 'Not found', `No route ${path}; try ${this.paths().join(', ')} (GET /openapi.json describes them all)`, { extra: { routes: this.routes() } });
  }
}

function match(segments: readonly string[], parts: readonly string[]): Record<string, string> | undefined {
  if (segments.length !== parts.length) return undefined;
  const params: Record<string, string> = {};
  for (let i = 0; i < segments.length; i++) {
    const seg = segments[i]!;
    const part = parts[i]!;
    if (seg.startsWith(':')) {
      if (part === '') return undefined;
      try {
        params[seg.slice(1)] = decodeURIComponent(part);
      } catch {
        throw new AdminError(400, 'ERR_BAD_PATH', 'Bad request path', `"${part}" is not valid URL encoding: encode the value with encodeURIComponent (":" as %3A)`);
      }
    } else if (seg !== part) return undefined;
  }
  return params;
}

function makeRequest(req: IncomingMessage, res: ServerResponse, method: string, path: string, params: Record<string, string>): Request {
  let body: Promise<Buffer> | undefined;
  const readBody = (): Promise<Buffer> => (body ??= readLimited(req, MAX_BODY_BYTES));
  return {
    method,
    path,
    params,
    headers: req.headers,
    res,
    body: readBody,
    json: async () => {
      const text = (await readBody()).toString('utf8');
      const parsed = parseJsonText(text);
      if (parsed.ok) return parsed.value;
      throw new AdminError(400, 'ERR_JSON', 'Invalid JSON', `The request body is not JSON: ${parsed.issue.message}`, { extra: { issues: [parsed.issue] } });
    },
  };
}

function tooLarge(limit: number): AdminError {
  return new AdminError(413, 'ERR_BODY_TOO_LARGE', 'Request body too large', `The request body is over ${limit} bytes (1 MiB): send a smaller document`);
}

/**
 * After a 413 the rest of the body is discarded, never kept: as nginx's lingering_timeout (5 s
 * without a byte) and lingering_time (30 s in all), and at most LINGER_BYTES.
 */
const LINGER_IDLE_MS = 5000;
const LINGER_MAX_MS = 30_000;
const LINGER_BYTES = 8 * 1024 * 1024;

/**
 * A lingering close, as nginx's: closing a socket with unread bytes makes the kernel send a RST,
 * which can reach the client before our 413 does. So the rest of the body is read and dropped
 * while it keeps coming (a busy client may take seconds: the idle limit restarts at every chunk),
 * then the socket is closed.
 */
function linger(req: IncomingMessage, res: ServerResponse): void {
  let dropped = 0;
  const socket = req.socket;
  const giveUp = (): void => {
    socket.destroy();
  };
  let idle = setTimeout(giveUp, LINGER_IDLE_MS);
  const overall = setTimeout(giveUp, LINGER_MAX_MS);
  idle.unref();
  overall.unref();
  const stop = (): void => {
    clearTimeout(idle);
    clearTimeout(overall);
  };
  socket.once('close', stop);
  req.on('data', (chunk: Buffer) => {
    dropped += chunk.length;
    if (dropped > LINGER_BYTES) return giveUp();
    clearTimeout(idle);
    idle = setTimeout(giveUp, LINGER_IDLE_MS);
    idle.unref();
  });
  req.on('end', () => {
    stop();
    res.once('finish', () => socket.end());
    if (res.writableFinished) socket.end();
  });
  req.resume();
}

function readLimited(req: IncomingMessage, limit: number): Promise<Buffer> {
  const declared = Number(req.headers['content-length']);
  if (declared > limit) return Promise.reject(tooLarge(limit));
  return new Promise((resolve, reject) => {
    const chunks: Buffer[] = [];
    let size = 0;
    const onData = (chunk: Buffer): void => {
      size += chunk.length;
      if (size > limit) {
        cleanup();
        req.pause();
        reject(tooLarge(limit));
        return;
      }
      chunks.push(chunk);
    };
    const onEnd = (): void => {
      cleanup();
      resolve(Buffer.concat(chunks, size));
    };
    const onError = (err: Error): void => {
      cleanup();
      reject(new AdminError(400, 'ERR_BODY', 'Request body not received', `The request body could not be read: ${err.message}`, { cause: err }));
    };
    const cleanup = (): void => {
      req.off('data', onData);
      req.off('end', onEnd);
      req.off('error', onError);
    };
    req.on('data', onData);
    req.on('end', onEnd);
    req.on('error', onError);
  });
}

export function problemOf(err: unknown): { problem: Problem & Record<string, unknown>; headers: Readonly<Record<string, string>> } {
  if (err instanceof AdminError) {
    return { problem: { type: `urn:fproxy:problem:${err.code}`, title: err.title, status: err.status, detail: err.message, code: err.code, ...err.extra }, headers: err.headers };
  }
  const code = typeof (err as { code?: unknown })?.code === 'string' ? (err as { code: string }).code : 'ERR_INTERNAL';
  return { problem: { type: `urn:fproxy:problem:${code}`, title: 'Internal error', status: 500, detail: (err as Error)?.message ?? String(err), code }, headers: {} };
}

function sendProblem(res: ServerResponse, err: unknown): void {
  if (res.headersSent) return void res.destroy();
  const { problem, headers } = problemOf(err);
  res.writeHead(problem.status, { 'content-type': 'application/problem+json', 'cache-control': 'no-store', ...headers });
  res.end(JSON.stringify(problem) + '\n');
}

function send(res: ServerResponse, r: Reply): void {
  const { headers } = r;
  let text: string | Buffer;
  let type: string;
  if (res.destroyed) return;
  if (r.body instanceof RawBody) [text, type] = [r.body.body, r.body.contentType];
  else if (Buffer.isBuffer(r.body)) [text, type] = [r.body, headers['content-type'] ?? 'application/octet-stream'];
  else if (typeof r.body === 'string' && headers['content-type'] !== undefined) [text, type] = [r.body, headers['content-type']];
  else if (typeof r.body === 'string') [text, type] = [r.body + '\n', 'text/plain'];
  else [text, type] = [JSON.stringify(r.body) + '\n', 'application/json'];
  res.writeHead(r.status, { 'content-type': type, 'cache-control': 'no-store', ...headers });
  res.end(text);
}
