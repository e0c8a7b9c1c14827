// AdminServer: the daemon's HTTP admin endpoint (node:http) over a small Router (admin/router.ts:
// params, body limit, bearer auth, async handlers, problem+json). Reads are a table of GET
// handlers (returning JSON, a promise of it, or a RawBody with its own content type), so adding
// one is one line; writes and their shapes are in admin/ (contract.ts).
//   GET /        → the dashboard page (daemon/dashboard/), /dashboard.js its script
//   GET /metrics → Prometheus text format, pulled fresh from every listener (daemon/metrics/)
//   GET /stats   → per app totals, rates, targets, history, and the last rollouts (JSON)
//   GET /healthz → 200 "ok" while the daemon runs
//   GET /apps    → [{name, generation, state, pids, ports, [listen], targets, [routes], activeConnections,
//                   currentError, lastError, lastErrorAt, nextAttemptAt, …,
//                   health: [{target, state, since, lastError, activeConnections}], panic}] (AppStatus)
//   GET /status  → {pid, config: {path, hash, appliedAt, error}, migrateReq, spares, reconciles, logLinesDropped, apps} — `config.error` is
//                  the last rejected edit ({code, message, issues: [{path, message}]}) or null
//   writes: see admin/admin-routes.ts and GET /openapi.json
// It never throws on a bad request: unknown path → 404, a known path with another method → 405,
// each as application/problem+json (RFC 9457).
import { createServer } from 'node:http';
import type { Server } from 'node:http';
import type { AddressInfo, Server as NetServer } from 'node:net';
import { DaemonError } from './daemon-error.ts';
import { AdminAuth } from './admin/admin-auth.ts';
import { REQUEST_TIMEOUT_MS } from './admin/contract.ts';
import { Router } from './admin/router.ts';
import type { Handler, Route } from './admin/router.ts';

export { RawBody } from './admin/router.ts';

export interface AdminAddress {
  readonly host: string;
  readonly port: number;
}

export type AdminRoutes = Readonly<Record<string, Handler>>;

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
  readonly router: Router;
  /** A listening socket received from a predecessor daemon (upgrade), served instead of listen(). */
  #adopted: NetServer | undefined;

  /**
   * @param routes plain GET routes, one line each ('/apps': () => status): a string answers
   *   text/plain, anything else JSON; a handler may be async and may return a Reply.
   * @param options.routes more routes (writes: method, path with :params, auth); options.auth the token check.
   */
  constructor(routes: AdminRoutes, options: { routes?: readonly Route[]; auth?: AdminAuth } = {}) {
    this.router = new Router(options.auth ?? new AdminAuth(undefined));
    for (const [path, handler] of Object.entries(routes)) this.router.get(path, handler);
    for (const route of options.routes ?? []) this.router.add(route);
    // A slow client (headers or body trickling in) gets 408 after REQUEST_TIMEOUT_MS; Node checks
    // every connectionsCheckingIntervalMs, so the cut comes within a second of it.
    this.#server = createServer({ requestTimeout: REQUEST_TIMEOUT_MS, headersTimeout: REQUEST_TIMEOUT_MS, connectionsCheckingInterval: 1000 }, (req, res) => void this.router.handle(req, res));
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
}
