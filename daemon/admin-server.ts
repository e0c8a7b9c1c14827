// AdminServer: the daemon's small HTTP status endpoint (node:http). Routes are a table of
// GET handlers returning JSON (or a promise of it, or a RawBody with its own content type), so
// adding one (writes later) is one line.
//   GET /        → the dashboard page (daemon/dashboard/), /dashboard.js its script
//   GET /metrics → Prometheus text format, pulled fresh from every listener (daemon/metrics/)
//   GET /stats   → per app totals, rates, targets, history, and the last rollouts (JSON)
//   GET /healthz → 200 "ok" while the daemon runs
//   GET /apps    → [{name, generation, state, pids, ports, [listen], targets, [routes], activeConnections,
//                   currentError, lastError, lastErrorAt, nextAttemptAt, …,
//                   health: [{target, state, since, lastError, activeConnections}], panic}] (AppStatus)
//   GET /status  → {pid, config: {path, hash, appliedAt, error}, migrateReq, spares, reconciles, apps} — `config.error` is
//                  the last rejected edit ({code, message, issues: [{path, message}]}) or null
// It never throws on a bad request: unknown path → 404, other methods → 405.
import { createServer } from 'node:http';
import type { IncomingMessage, Server, ServerResponse } from 'node:http';
import type { AddressInfo, Server as NetServer } from 'node:net';
import { DaemonError } from './daemon-error.ts';

export interface AdminAddress {
  readonly host: string;
  readonly port: number;
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

export type AdminRoutes = Readonly<Record<string, () => unknown>>;

export const DEFAULT_ADMIN_ADDR = '127.0.0.1:9900';

/** "host:port", "[v6]:port" or ":port" (host 127.0.0.1). Throws ERR_ADMIN_ADDR_INVALID. */
export function parseAdminAddr(raw: string): AdminAddress {
  const m = /^(?:\[([^\]]+)\]|([^:]*)):(\d{1,5})$/.exec(raw.trim());
  const port = Number(m?.[3]);
  if (m === null || port > 65535) {
    throw new DaemonError('ERR_ADMIN_ADDR_INVALID', `Invalid FPROXY_ADMIN_ADDR "${raw}": use host:port, [v6]:port or :port (port 0 picks a free one)`);
  }
  return { host: m[1] ?? (m[2] || '127.0.0.1'), port };
}

export class AdminServer {
  readonly #server: Server;
  readonly #routes: AdminRoutes;
  #adopted: NetServer | undefined;

  constructor(routes: AdminRoutes) {
    this.#routes = routes;
    this.#server = createServer((req, res) => this.#handle(req, res));
  }

  /** Binds; rejects with ERR_ADMIN_LISTEN (port in use …). Resolves with the bound address. */
  listen(addr: AdminAddress): Promise<AdminAddress> {
    return new Promise((resolve, reject) => {
      const onError = (cause: Error): void => {
        reject(new DaemonError('ERR_ADMIN_LISTEN', `Cannot listen for the admin endpoint on ${addr.host}:${addr.port}: ${cause.message}`, { port: addr.port, cause }));
      };
      this.#server.once('error', onError);
      this.#server.listen(addr.port, addr.host, () => {
        this.#server.off('error', onError);
        const bound = this.#server.address() as AddressInfo;
        resolve({ host: bound.address, port: bound.port });
      });
    });
  }

  close(): Promise<void> {
    return new Promise((resolve) => {
      this.#adopted?.close();
      this.#server.close(() => resolve());
      this.#server.closeAllConnections();
      // An adopted socket's server never listened itself: close() would wait for nothing.
      if (this.#adopted !== undefined) resolve();
    });
  }

  /** The listening server, to hand to a successor daemon over IPC (daemon/upgrade/). */
  get listening(): NetServer | undefined {
    return this.#adopted ?? (this.#server.listening ? this.#server : undefined);
  }

  /**
   * Serve on a listening socket received from a predecessor daemon (daemon upgrade): both
   * processes accept on the same socket until the predecessor closes its copy, so no request is
   * refused in between. Resolves with its address.
   */
  adopt(server: NetServer): AdminAddress {
    this.#adopted = server;
    server.on('connection', (socket) => this.#server.emit('connection', socket));
    const bound = server.address() as AddressInfo;
    return { host: bound.address, port: bound.port };
  }

  #handle(req: IncomingMessage, res: ServerResponse): void {
    const path = (req.url ?? '/').split('?')[0]!;
    const route = this.#routes[path];
    if (route === undefined) return send(res, 404, { error: { code: 'ERR_NOT_FOUND', message: `No route ${path}; try ${Object.keys(this.#routes).join(', ')}` } });
    if (req.method !== 'GET' && req.method !== 'HEAD') return send(res, 405, { error: { code: 'ERR_METHOD', message: `${req.method} ${path} is not allowed; use GET` } });
    const fail = (err: unknown): void => send(res, 500, { error: { code: (err as DaemonError).code ?? 'ERR_INTERNAL', message: (err as Error).message } });
    try {
      const body = route();
      if (body instanceof Promise) body.then((b: unknown) => send(res, 200, b), fail);
      else send(res, 200, body);
    } catch (err) {
      fail(err);
    }
  }
}

function send(res: ServerResponse, status: number, body: unknown): void {
  if (res.destroyed) return;
  if (body instanceof RawBody) {
    res.writeHead(status, { 'content-type': body.contentType, 'cache-control': 'no-store' });
    res.end(body.body);
    return;
  }
  const text = typeof body === 'string' ? body + '\n' : JSON.stringify(body) + '\n';
  res.writeHead(status, { 'content-type': typeof body === 'string' ? 'text/plain' : 'application/json', 'cache-control': 'no-store' });
  res.end(text);
}
