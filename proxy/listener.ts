// Listener: serves one app generation in this process. Owns the app's servers (one per port, each
// bound dual-stack on `::` with SO_REUSEPORT so another generation or worker can bind the same
// ports), the target pools, the DNS cache, the open sessions and the counters; for a Tls
// "terminate" app, the certificates (loaded at start, watched until drain).
//
// Invariants: start() either binds every port or binds none (it closes what it bound and throws
// ListenerError); after drain() starts no connection is accepted; drain() resolves once every
// session is closed, forcing the rest closed at drainTimeoutMs.
import net from 'node:net';
import { Connector, type ConnectError } from './connector.ts';
import { DnsCache } from './dns-cache.ts';
import { defaultEngine } from './engine/default-engine.ts';
import type { Engine } from './engine/engine.ts';
import type { ListenerCounters } from './ipc/protocol.ts';
import type { ListenerContext } from './listener-context.ts';
import type { Logger } from './log.ts';
import { Router } from './router.ts';
import { Session } from './session.ts';
import type { ListenerSpec } from './spec.ts';
import type { CertStore } from './tls/cert-store.ts';
import type { TlsTerminator } from './tls/terminator.ts';

export class ListenerError extends Error {
  readonly code: string;
  readonly app: string;
  readonly port: number | undefined;
  constructor(code: string, app: string, port: number | undefined, message: string, cause?: unknown) {
    super(message, { cause });
    this.code = code;
    this.app = app;
    this.port = port;
  }
}

interface TcpHandle {
  setNoDelay?(on: boolean): number;
  setKeepAlive?(on: boolean, delaySeconds: number): number;
}

/**
 * Client sockets need TCP_NODELAY and keepalive. Linux copies both (and the keepalive timers) from
 * the listening socket to every accepted one, so set them once here instead of five setsockopt
 * calls per connection (measured with strace: 10 → 5 per proxied connection). Falls back to
 * per-connection options if the handle does not offer them.
 */
function inheritSocketOptions(server: net.Server): void {
  const handle = (server as unknown as { _handle?: TcpHandle })._handle;
  if (handle?.setNoDelay && handle.setKeepAlive && handle.setNoDelay(true) === 0 && handle.setKeepAlive(true, 60) === 0) return;
  server.on('connection', (s: net.Socket) => {
    s.setNoDelay(true);
    s.setKeepAlive(true, 60_000);
  });
}

export interface ListenerOptions {
  readonly logger: Logger;
  readonly dns?: DnsCache;
  /** Host to bind; default "::" (dual-stack, all interfaces), falling back to 0.0.0.0 without IPv6. */
  readonly host?: string;
}

export class Listener implements ListenerContext {
  readonly spec: ListenerSpec;
  readonly router: Router;
  readonly connector: Connector;
  readonly logger: Logger;
  readonly dns: DnsCache;
  /** The socket engine of this process (`engine.kind`: 'native' | 'js'). */
  readonly engine: Engine;
  readonly #servers: net.Server[] = [];
  readonly #sessions = new Set<Session>();
  readonly #host: string | undefined;
  #total = 0;
  #failed = 0;
  #bytesIn = 0;
  #bytesOut = 0;
  #draining = false;
  #drainWaiter: (() => void) | null = null;
  #lastConnectErrorLog = 0;
  #terminator: TlsTerminator | undefined;

  constructor(spec: ListenerSpec, opts: ListenerOptions) {
    this.spec = spec;
    this.logger = opts.logger;
    this.#host = opts.host;
    this.dns = opts.dns ?? new DnsCache({ onError: (host, err) => this.logger.warn({ host, err: err.message }, 'DNS lookup failed') });
    this.router = new Router(spec.targets, spec.routes);
    const chosen = defaultEngine();
    this.engine = chosen.engine;
    if (chosen.warning !== undefined) this.logger.warn({ engine: this.engine.kind }, chosen.warning);
    this.connector = new Connector({ app: spec.app, dns: this.dns, budgetMs: spec.connectTimeoutMs, attemptTimeoutMs: spec.connectAttemptTimeoutMs });
  }

  /** Warm DNS for every target, then bind every port. Resolves with the bound ports. */
  async start(): Promise<number[]> {
    await this.#openTls();
    const hosts = new Set<string>();
    for (const t of this.spec.targets) hosts.add(t.host);
    for (const r of this.spec.routes) for (const t of r.targets) hosts.add(t.host);
    const failures = await this.dns.warm([...hosts]);
    for (const f of failures) this.logger.warn({ host: f.host, err: f.error.message }, 'target name does not resolve yet; its attempts fail until it does');

    const bound: number[] = [];
    try {
      for (const port of this.spec.ports) bound.push(await this.#bind(port));
    } catch (err) {
      await this.#closeServers();
      this.#terminator?.close();
      throw err;
    }
    return bound;
  }

  /**
   * Terminate apps: load every cert now (a bad one fails the start, never a connection), then watch.
   * Imported here, not at the top: node:tls and its OpenSSL state cost ~3 MB per process, and plain
   * TCP and passthrough listeners never need them (the bundle keeps this in a lazy chunk).
   */
  async #openTls(): Promise<void> {
    const tls = this.spec.tls;
    if (tls?.mode !== 'terminate' || this.#terminator !== undefined) return;
    const [{ CertStore }, { TlsTerminator }] = await Promise.all([import('./tls/cert-store.ts'), import('./tls/terminator.ts')]);
    let store: CertStore;
    try {
      store = CertStore.load(tls.certs, { logger: this.logger });
    } catch (err) {
      const e = err as { code?: string; message: string };
      throw new ListenerError(e.code ?? 'ERR_TLS_CERT', this.spec.app, undefined, `App "${this.spec.app}": ${e.message}`, err);
    }
    this.#terminator = new TlsTerminator(store.watch(), this.router, this.spec.routes.some((r) => r.alpn.length > 0));
  }

  get terminator(): TlsTerminator | undefined {
    return this.#terminator;
  }

  async #bind(port: number): Promise<number> {
    const server = net.createServer({ allowHalfOpen: true, pauseOnConnect: true });
    server.on('connection', (socket: net.Socket) => this.#accept(socket));
    // Accept errors (EMFILE …) cost the connection, never the process.
    const listenOnce = (host: string) =>
      new Promise<void>((resolve, reject) => {
        const onError = (err: Error) => reject(err);
        server.once('error', onError);
        server.listen({ port, host, ipv6Only: false, reusePort: true, backlog: 1024 }, () => {
          server.removeListener('error', onError);
          resolve();
        });
      });
    const host = this.#host ?? '::';
    try {
      await listenOnce(host);
    } catch (err) {
      const code = (err as NodeJS.ErrnoException).code;
      if (this.#host === undefined && (code === 'EAFNOSUPPORT' || code === 'EADDRNOTAVAIL')) {
        await listenOnce('0.0.0.0').catch((e: unknown) => { throw this.#bindError(port, e); });
      } else {
        throw this.#bindError(port, err);
      }
    }
    inheritSocketOptions(server);
    server.on('error', (err) => this.logger.error({ port, err: err.message }, 'server error'));
    this.#servers.push(server);
    return (server.address() as net.AddressInfo).port;
  }

  #bindError(port: number, err: unknown): ListenerError {
    const code = (err as NodeJS.ErrnoException).code ?? 'UNKNOWN';
    const hint = code === 'EADDRINUSE' ? ' (another program holds it without SO_REUSEPORT)' : code === 'EACCES' ? ' (ports below 1024 need root or CAP_NET_BIND_SERVICE)' : '';
    return new ListenerError('ERR_BIND', this.spec.app, port, `App "${this.spec.app}" cannot bind port ${port}: ${code}${hint}`, err);
  }

  #accept(socket: net.Socket): void {
    if (this.#draining) {
      socket.destroy();
      return;
    }
    this.#total++;
    const s = new Session(this, socket);
    this.#sessions.add(s);
    s.start();
  }

  onConnectFailed(session: Session, err: ConnectError | null): void {
    this.#failed++;
    // Once a second at most: a dead pool under load must not flood the log.
    const now = Date.now();
    if (now - this.#lastConnectErrorLog >= 1000) {
      this.#lastConnectErrorLog = now;
      this.logger.warn({ client: session.clientAddress, target: err?.lastTarget, endpoint: err?.lastEndpoint, attempts: err?.attempts, err: err?.message }, 'no target reachable; client reset');
    }
  }

  onSessionClosed(s: Session): void {
    if (!this.#sessions.delete(s)) return;
    // The client socket's own counts stop at a native engine hand-off; the session has the totals.
    const bytesIn = s.engineTotals?.bytesIn ?? s.client.bytesRead;
    const bytesOut = s.engineTotals?.bytesOut ?? s.client.bytesWritten;
    this.#bytesIn += bytesIn;
    this.#bytesOut += bytesOut;
    if (this.logger.isLevelEnabled('debug')) {
      this.logger.debug({
        client: s.clientAddress, sni: s.sni, target: s.target, endpoint: s.endpoint, attempts: s.attempts, outcome: s.outcome,
        bytesIn, bytesOut, durationMs: Date.now() - s.startedAt,
      }, 'access');
    }
    if (this.#draining && this.#sessions.size === 0) this.#drainWaiter?.();
  }

  counters(): ListenerCounters {
    return { activeConnections: this.#sessions.size, totalConnections: this.#total, failedConnections: this.#failed, bytesIn: this.#bytesIn, bytesOut: this.#bytesOut };
  }

  get draining(): boolean {
    return this.#draining;
  }

  /** Stop accepting, wait for open sessions up to drainTimeoutMs, then close the rest. */
  async drain(timeoutMs: number = this.spec.drainTimeoutMs): Promise<{ closedByTimeout: number }> {
    if (this.#draining) return { closedByTimeout: 0 };
    this.#draining = true;
    await this.#closeServers();
    this.#terminator?.close();
    if (this.#sessions.size === 0) return { closedByTimeout: 0 };
    await new Promise<void>((resolve) => {
      const timer = setTimeout(resolve, timeoutMs);
      this.#drainWaiter = () => {
        clearTimeout(timer);
        resolve();
      };
    });
    const left = [...this.#sessions];
    for (const s of left) s.destroy('drained');
    return { closedByTimeout: left.length };
  }

  #closeServers(): Promise<void> {
    const servers = this.#servers.splice(0);
    // close() stops accepting at once; its callback waits for connections, which we track ourselves.
    for (const s of servers) s.close();
    return Promise.resolve();
  }
}
