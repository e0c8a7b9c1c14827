// Listener: serves one app generation in this process. Owns the app's servers (one per port and
// bind address — dual-stack `::` unless the spec lists addresses — each with SO_REUSEPORT so
// another generation or worker can bind the same ports), the target pools and their per-target
// state (TargetTable: the daemon's health states, passive health, connections per target), the DNS
// cache, the open sessions and their metrics; for a Tls "terminate" app, the certificates (loaded at
// start, watched until drain).
//
// On the native engine, a plain TCP app's listening sockets go to the engine once bound (see
// nativeAccepts): it accepts, connects and forwards, and each connection is a NativeSession (plain
// values, no net.Socket); the other apps' connections are Sessions.
//
// Invariants: start() either binds every port or binds none (it closes what it bound and throws
// ListenerError); after drain() starts no connection is accepted; drain() resolves once every
// session is closed, forcing the rest closed at drainTimeoutMs.
import net from 'node:net';
import { readdirSync, readFileSync } from 'node:fs';
import { AccessLog } from './access-log.ts';
import { Connector, type ConnectError } from './connector.ts';
import { DnsCache } from './dns-cache.ts';
import { defaultEngine } from './engine/default-engine.ts';
import type { Engine } from './engine/engine.ts';
import { NativeEngine } from './engine/native-engine.ts';
import { NativeSession } from './native-session.ts';
import type { HandoverSession, HealthStates, MetricsSnapshot, TargetsReport } from './ipc/protocol.ts';
import { ListenerMetrics } from './metrics/listener-metrics.ts';
import type { ListenerContext } from './listener-context.ts';
import type { Logger } from './log.ts';
import { TargetTable } from './pool/target-table.ts';
import type { TargetPool } from './pool/target-pool.ts';
import type { TargetState } from './pool/target-state.ts';
import { Router } from './router.ts';
import { TargetsReporter } from './targets-reporter.ts';
import { Session } from './session.ts';
import type { HandOff } from './session.ts';

/** How long a draining listener keeps trying to hand sessions over before it drains the rest as before. */
const HANDOVER_WINDOW_MS = 1000;
import type { ListenerSpec } from './spec.ts';
import type { CertStore } from './tls/cert-store.ts';
import type { TlsTerminator } from './tls/terminator.ts';
import { Admission, type AdmissionTransport, type Refusal, type Ticket } from './protect/admission.ts';
import { LimitAuthority } from './protect/limit-authority.ts';
import type { LeaseGrant } from './protect/lease-messages.ts';

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
  /** Called (at most every TARGETS_REPORT_MIN_MS) after passive health changed a target (TargetsReporter). */
  readonly onTargets?: (report: TargetsReport) => void;
  /** The daemon's active-check states to start with (a new generation keeps the old one's view). */
  readonly health?: HealthStates;
  /** Epoch ms for target state; default Date.now. */
  readonly now?: () => number;
  /**
   * Where limit leases come from: the daemon over IPC (proxy/main.ts). Absent: an in-process
   * authority (`fproxy listen`, tests), so the limits hold for this one process.
   */
  readonly leases?: AdmissionTransport;
  /** Where access lines go when spec.accessLog is set; default: through `logger`. */
  readonly accessLog?: AccessLog;
  /** The socket engine; default: the process's (defaultEngine: FPROXY_ENGINE). Tests pick one. */
  readonly engine?: Engine;
}

/**
 * Which apps the native engine accepts and connects for (no Node socket per connection): all but
 * TLS termination, where Node's TLS socket does the handshake (Session).
 */
function nativeAccepts(spec: ListenerSpec): boolean {
  return spec.tls?.mode !== 'terminate';
}

/** What the metrics and the access line read from a closed connection, whichever path served it. */
interface Closed {
  readonly outcome: string;
  readonly code: string | undefined;
  readonly t0: number;
  readonly connectMs: number;
  readonly handshakeMs: number;
  readonly clientAddress: string | undefined;
  readonly sni: string | undefined;
  readonly alpn: string | undefined;
  readonly target: string | undefined;
  readonly endpoint: string | undefined;
  readonly attempts: number;
}

/** A summary of the metrics for tests and logs (the daemon reads MetricsSnapshot instead). */
export interface ListenerCounters {
  readonly activeConnections: number;
  /** Connections accepted since start (closed + open). */
  readonly totalConnections: number;
  /** Closed with outcome connect-failed (no target reachable). */
  readonly failedConnections: number;
  readonly bytesIn: number;
  readonly bytesOut: number;
}

const FD_EPISODE_QUIET_MS = 2000;
/** How long drain() waits for the native engine's close reports after it closed what was left. */
const NATIVE_CLOSE_WAIT_MS = 5000;
/** How long drain() waits for the native engine to confirm its listening sockets closed. */
const UNLISTEN_WAIT_MS = 1000;

/**
 * How many sessions fit in this process's descriptor limit: (soft RLIMIT_NOFILE − descriptors open
 * now − headroom for DNS, logs, IPC) / 2, as HAProxy derives maxconn from ulimit -n. Read once, at
 * start. Linux only; elsewhere no cap (libuv then accepts and closes what it cannot take).
 */
function fdCap(): number {
  try {
    const m = /^Max open files\s+(\d+)/m.exec(readFileSync('/proc/self/limits', 'utf8'));
    if (m === null) return Infinity;
    const limit = Number(m[1]);
    const open = readdirSync('/proc/self/fd').length;
    const headroom = Math.min(64, Math.ceil(limit / 16));
    return Math.max(1, Math.floor((limit - open - headroom) / 2));
  } catch {
    return Infinity;
  }
}

const REFUSAL_CODE: Record<Refusal, string> = {
  'denied': 'ERR_ACL_DENIED',
  'over-limit': 'ERR_OVER_LIMIT',
  'rate-limited': 'ERR_RATE_LIMITED',
  'queue-timeout': 'ERR_QUEUE_TIMEOUT',
};

/** A protected app's ticket remembers its session, so the verdict can reach it. */
interface SessionTicket extends Ticket {
  readonly session: Session | NativeSession;
}

function onDecided(t: Ticket, refusal: Refusal | null): void {
  const s = (t as SessionTicket).session;
  if (refusal !== null) s.refuse(refusal, REFUSAL_CODE[refusal]);
  else if (s instanceof NativeSession) s.admitted();
  else if (s.ctx.spec.acceptProxyProtocol) s.admitted();
  else s.start();
}


export class Listener implements ListenerContext {
  readonly spec: ListenerSpec;
  readonly router: Router;
  readonly connector: Connector;
  readonly logger: Logger;
  readonly dns: DnsCache;
  readonly targets: TargetTable;
  readonly #reporter: TargetsReporter | undefined;
  readonly metrics: ListenerMetrics;
  readonly #accessLog: AccessLog | undefined;
  /** The socket engine of this process (`engine.kind`: 'native' | 'js'). */
  readonly engine: Engine;
  readonly #servers: net.Server[] = [];
  readonly #sessions = new Set<Session>();
  /** Set when the engine accepts for this app (nativeAccepts): its connections and listening sockets. */
  readonly #native: NativeEngine | null;
  readonly #nativeSessions = new Set<NativeSession>();
  readonly #lids: number[] = [];
  readonly #host: string | undefined;
  #dnsErrors = 0;
  #draining = false;
  /** drain() has closed what was left: from here a late native accept is closed, not served. */
  #drainClosed = false;
  #drainWaiter: (() => void) | null = null;
  #lastConnectErrorLog = 0;
  #terminator: TlsTerminator | undefined;
  /** Debug access lines (no AccessLog): with debug off, no per-connection work is spent on them. */
  readonly #debugAccess: boolean;
  /** null: no ACL and no limits, and accept() pays nothing for protection. */
  readonly #admission: Admission | null;
  readonly #tickets = new Map<Session | NativeSession, SessionTicket>();
  #authority: LimitAuthority | undefined;
  #sweepTimer: NodeJS.Timeout | undefined;
  #fdEpisode = false;
  #fdErrors = 0;
  #lastFdError = 0;
  /** Sessions this process can hold within RLIMIT_NOFILE (Infinity when unknown). */
  #fdCap = Infinity;
  readonly admit: ((session: Session | NativeSession) => boolean) | undefined;

  constructor(spec: ListenerSpec, opts: ListenerOptions) {
    this.spec = spec;
    this.logger = opts.logger;
    this.#debugAccess = opts.logger.isLevelEnabled('debug');
    this.#host = opts.host;
    this.dns = opts.dns ?? new DnsCache({ onError: (host, err) => { this.#dnsErrors++; this.logger.warn({ host, err: err.message }, 'DNS lookup failed'); } });
    this.metrics = new ListenerMetrics(spec.app);
    this.#accessLog = spec.accessLog ? (opts.accessLog ?? AccessLog.open(spec.app, this.logger, {}, undefined)) : undefined;
    const onTargets = opts.onTargets;
    this.#reporter = onTargets && new TargetsReporter(() => onTargets(this.targetsReport()), () => this.targets.nextExpiry());
    this.targets = new TargetTable({
      strategy: spec.strategy,
      outlierDetection: spec.outlierDetection,
      ...(opts.now ? { now: opts.now } : {}),
      onChange: (state) => this.#targetChanged(state),
      onPanic: (pool) => this.#panicChanged(pool),
    });
    this.router = new Router(spec.targets, spec.routes, this.targets);
    const chosen = opts.engine !== undefined ? { engine: opts.engine } : defaultEngine();
    this.engine = chosen.engine;
    if (chosen.warning !== undefined) this.logger.warn({ engine: this.engine.kind }, chosen.warning);
    this.#native = this.engine instanceof NativeEngine && nativeAccepts(spec) ? this.engine : null;
    if (opts.health) this.targets.applyHealth(opts.health);
    this.connector = new Connector({ app: spec.app, dns: this.dns, budgetMs: spec.connectTimeoutMs, attemptTimeoutMs: spec.connectAttemptTimeoutMs, metrics: this.metrics, queueTimeoutMs: spec.queueTimeoutMs });
    this.#admission = Admission.forSpec(spec, opts.leases ?? this.#localLeases());
    this.admit = this.#admission !== null && spec.acceptProxyProtocol ? (s) => this.#admit(s, s.clientAddress ?? '') : undefined;
  }

  /** An in-process authority for this listener alone; answers asynchronously, as the daemon would. */
  #localLeases(): AdmissionTransport {
    const s = this.spec;
    const p = s.perSource;
    const settings = { maxConnections: s.maxConnections, queueTimeoutMs: s.queueTimeoutMs, perSourceMaxConnections: p?.maxConnections ?? 0, ratePerSecond: p?.ratePerSecond ?? 0, burst: p?.burst ?? 1, workers: 1 };
    return {
      request: (req) => {
        this.#authority ??= new LimitAuthority(settings, { send: (_h, msg) => queueMicrotask(() => (msg.kind === 'grant' ? this.onLeaseGrant(msg) : this.onLeaseRecall(msg.key))) });
        this.#authority.request(0, req);
      },
      giveBack: (ret) => this.#authority?.giveBack(0, ret),
    };
  }

  /** From the daemon (or the local authority). */
  onLeaseGrant(g: LeaseGrant): void {
    this.#admission?.onGrant(g);
  }

  onLeaseRecall(key: string | null): void {
    this.#admission?.onRecall(key);
  }

  /** Protection verdict for a session: true = admitted now; false = refused or waiting (onDecided follows). */
  #admit(s: Session | NativeSession, address: string): boolean {
    const t: SessionTicket = { address, key: null, holds: 0, closed: false, decided: onDecided, session: s };
    const r = this.#admission!.check(t);
    if (r === 'denied') {
      s.refuse(r, REFUSAL_CODE[r]);
      return false;
    }
    // Only tickets that may hold (or wait for) a lease are tracked.
    this.#tickets.set(s, t);
    if (r === null) return true;
    if (r !== 'wait') s.refuse(r, REFUSAL_CODE[r]);
    return false;
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
    this.#startSweeps();
    this.#fdCap = fdCap();
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

  /**
   * Bind one port on each address of spec.listen, or on every interface when it is empty. Port 0
   * (tests) binds the first address on a free port and the others on that same port.
   */
  async #bind(port: number): Promise<number> {
    const addresses = this.spec.listen ?? [];
    if (addresses.length === 0) return this.#bindAll(port);
    let bound = port;
    for (const address of addresses) bound = await this.#bindOne(bound, address);
    return bound;
  }

  /** Every interface: "::" dual-stack, falling back to 0.0.0.0 on a host without IPv6. */
  async #bindAll(port: number): Promise<number> {
    try {
      return await this.#bindOne(port, this.#host ?? '::');
    } catch (err) {
      const code = ((err as Error).cause as NodeJS.ErrnoException | undefined)?.code;
      if (this.#host === undefined && (code === 'EAFNOSUPPORT' || code === 'EADDRNOTAVAIL')) return this.#bindOne(port, '0.0.0.0');
      throw err;
    }
  }

  async #bindOne(port: number, host: string): Promise<number> {
    const server = net.createServer({ allowHalfOpen: true, pauseOnConnect: true });
    server.on('connection', (socket: net.Socket) => this.#accept(socket));
    try {
      await new Promise<void>((resolve, reject) => {
        server.once('error', reject);
        server.listen({ port, host, ipv6Only: false, reusePort: true, backlog: 1024 }, () => {
          server.removeListener('error', reject);
          resolve();
        });
      });
    } catch (err) {
      throw this.#bindError(port, host, err);
    }
    inheritSocketOptions(server);
    const boundPort = (server.address() as net.AddressInfo).port;
    // The engine accepts from here: it takes a dup of the bound socket, and Node's server closes its
    // own descriptor in this same tick, before libuv could accept anything on it.
    const fd = (server as unknown as { _handle?: { fd?: number } | null })._handle?.fd;
    if (this.#native !== null && typeof fd === 'number' && fd >= 0) {
      const sink = {
        accepted: (cfd: number, address: string, cport: number) => this.#acceptNative(cfd, address, cport),
        // Out of descriptors: the same episode as a refusal for want of them (one warning each).
        acceptFailed: (code: string) => this.#fdExhausted(boundPort, code),
      };
      try {
        this.#lids.push(this.#native.listen(fd, sink));
        server.close();
        return boundPort;
      } catch (err) {
        this.logger.warn({ port: boundPort, err: (err as Error).message }, 'the native engine cannot accept on this port; Node accepts instead');
      }
    }
    server.on('error', (err) => this.#serverError(port, err as NodeJS.ErrnoException));
    this.#servers.push(server);
    return boundPort;
  }

  /**
   * Out of file descriptors (EMFILE/ENFILE): libuv then accepts and closes the pending connections
   * with a reserved descriptor (no busy loop), the port stays bound and open connections keep
   * flowing. Logged once per episode; the episode ends at the next accepted connection.
   */
  #serverError(port: number, err: NodeJS.ErrnoException): void {
    if (err.code === 'EMFILE' || err.code === 'ENFILE') return this.#fdExhausted(port, err.code);
    this.logger.error({ port, err: err.message }, 'server error');
  }

  #fdExhausted(port: number | undefined, code: string): void {
    this.#fdErrors++;
    this.#lastFdError = Date.now();
    if (this.#fdEpisode) return;
    this.#fdEpisode = true;
    this.logger.warn({ port, code, activeConnections: this.activeConnections, fdEpisode: 'start' }, 'out of file descriptors (or memory): new connections are reset or wait in the queue until some close (raise LimitNOFILE / ulimit -n)');
  }

  /** The episode ends once FD_EPISODE_QUIET_MS pass without another descriptor error. */
  #endFdEpisode(): void {
    if (Date.now() - this.#lastFdError < FD_EPISODE_QUIET_MS) return;
    this.#fdEpisode = false;
    this.logger.warn({ failed: this.#fdErrors, activeConnections: this.activeConnections, fdEpisode: 'end' }, 'file descriptors available again');
    this.#fdErrors = 0;
  }

  /** MaxConnectionDurationMs, FirstByteTimeoutMs and idle lease expiry: one coarse timer, not one per connection. */
  #startSweeps(): void {
    const { maxConnectionDurationMs: maxMs, firstByteTimeoutMs } = this.spec;
    const firstByteMs = this.spec.tls === undefined && !this.spec.acceptProxyProtocol ? firstByteTimeoutMs : 0;
    const leases = this.#admission?.leases === true;
    if (maxMs <= 0 && firstByteMs <= 0 && !leases) return;
    let every = 1000;
    if (maxMs > 0) every = Math.min(every, maxMs / 4);
    if (firstByteMs > 0) every = Math.min(every, firstByteMs / 4);
    this.#sweepTimer = setInterval(() => {
      const now = Date.now();
      if (maxMs > 0 || firstByteMs > 0) {
        for (const s of this.#sessions) {
          const age = now - s.startedAt;
          if (maxMs > 0 && age >= maxMs) s.destroy('max-duration', 'ERR_MAX_DURATION');
          else if (firstByteMs > 0 && age >= firstByteMs && s.client.bytesRead === 0) s.destroy('first-byte-timeout', 'ERR_FIRST_BYTE_TIMEOUT');
        }
        // Native connections wait for their first byte in the engine (NativeSession).
        if (maxMs > 0) for (const s of this.#nativeSessions) if (now - s.startedAt >= maxMs) s.destroy('max-duration', 'ERR_MAX_DURATION');
      }
      this.#admission?.sweep(now);
      this.#authority?.sweep();
    }, Math.max(10, Math.floor(every)));
    this.#sweepTimer.unref();
  }

  #bindError(port: number, host: string, err: unknown): ListenerError {
    const code = (err as NodeJS.ErrnoException).code ?? 'UNKNOWN';
    const hint =
      code === 'EADDRINUSE' ? ' (another program holds it without SO_REUSEPORT)'
      : code === 'EACCES' ? ' (ports below 1024 need root or CAP_NET_BIND_SERVICE)'
      : code === 'EADDRNOTAVAIL' ? ` (this machine has no address ${host}: fix the app's Listen)`
      : '';
    const where = (this.spec.listen ?? []).length > 0 ? ` on ${host.includes(':') ? `[${host}]` : host}` : '';
    return new ListenerError('ERR_BIND', this.spec.app, port, `App "${this.spec.app}" cannot bind port ${port}${where}: ${code}${hint}`, err);
  }

  #accept(socket: net.Socket): void {
    if (this.#draining) {
      socket.destroy();
      this.metrics.closed({ outcome: 'drained', code: 'ERR_DRAINING', bytesIn: 0, bytesOut: 0, durationS: 0, connectS: -1, handshakeS: -1 });
      return;
    }
    if (this.#fdEpisode) this.#endFdEpisode();
    // The peer address is read lazily (a syscall) and is gone once the socket closes: the access
    // line needs it, so read it now (Node caches it on the socket).
    if (this.#accessLog !== undefined || this.#debugAccess) void socket.remoteAddress;
    const s = new Session(this, socket);
    this.#sessions.add(s);
    // Each session needs two descriptors; refusing here beats libuv closing whatever is pending.
    if (this.activeConnections > this.#fdCap) {
      this.#fdExhausted(undefined, 'EMFILE');
      return s.refuse('over-limit', 'ERR_FD_LIMIT');
    }
    // PROXY apps are checked once the header gives the real address (Session calls this.admit).
    if (this.#admission === null || this.spec.acceptProxyProtocol || this.#admit(s, socket.remoteAddress ?? '')) s.start();
  }

  /** A client socket the native engine accepted: the same steps as #accept, with plain values. */
  #acceptNative(fd: number, address: string, port: number): void {
    const native = this.#native!;
    // Accepted by the engine before drain() shut the listening socket, reported after: this
    // generation took it, so it serves it like any open connection while it drains (as Node's
    // server would have, which accepts only on this thread). Only once drain() has closed what was
    // left is a late one closed (and counted as drained).
    if (this.#drainClosed) {
      native.closeFd(fd, false);
      this.metrics.closed({ outcome: 'drained', code: 'ERR_DRAINING', bytesIn: 0, bytesOut: 0, durationS: 0, connectS: -1, handshakeS: -1 });
      return;
    }
    if (this.#fdEpisode) this.#endFdEpisode();
    const s = new NativeSession(this, native, fd, address, port);
    this.#nativeSessions.add(s);
    if (this.activeConnections > this.#fdCap) {
      this.#fdExhausted(undefined, 'EMFILE');
      return s.refuse('over-limit', 'ERR_FD_LIMIT');
    }
    // PROXY apps are checked once the header gives the real address (NativeSession calls this.admit).
    if (this.#admission === null || this.spec.acceptProxyProtocol || this.#admit(s, address)) s.start();
  }

  onConnectFailed(session: { readonly clientAddress: string | undefined }, err: ConnectError | null): void {
    const cause = (err?.cause as NodeJS.ErrnoException | undefined)?.code;
    // Out of descriptors for the upstream socket: one episode, not a dead pool.
    if (cause === 'EMFILE' || cause === 'ENFILE') return this.#fdExhausted(undefined, cause);
    // Once a second at most: a dead pool under load must not flood the log.
    const now = Date.now();
    if (now - this.#lastConnectErrorLog >= 1000) {
      this.#lastConnectErrorLog = now;
      this.logger.warn({ client: session.clientAddress, target: err?.lastTarget, endpoint: err?.lastEndpoint, attempts: err?.attempts, err: err?.message }, 'no target reachable; client reset');
    }
  }

  onSessionClosed(s: Session): void {
    if (!this.#sessions.delete(s)) return;
    if (this.#admission !== null) {
      const t = this.#tickets.get(s);
      if (t !== undefined) {
        this.#tickets.delete(s);
        this.#admission.release(t);
      }
    }
    // The client socket's own counts stop at a native engine hand-off (the session has the totals),
    // and restart at 0 in a worker that adopted the session from another (bytes*Before).
    const bytesIn = s.engineTotals?.bytesIn ?? s.bytesInBefore + s.client.bytesRead;
    const bytesOut = s.engineTotals?.bytesOut ?? s.bytesOutBefore + s.client.bytesWritten;
    this.#record(s, bytesIn, bytesOut);
  }

  /** A NativeSession ended (its one close report, or refused/failed before any upstream). */
  onNativeClosed(s: NativeSession): void {
    if (!this.#nativeSessions.delete(s)) return;
    if (this.#admission !== null) {
      const t = this.#tickets.get(s);
      if (t !== undefined) {
        this.#tickets.delete(s);
        this.#admission.release(t);
      }
    }
    this.#record(s, s.bytesIn, s.bytesOut);
  }

  /** One metrics update and (AccessLog, or debug) one access line per connection. */
  #record(s: Closed, bytesIn: number, bytesOut: number): void {
    const durationMs = performance.now() - s.t0;
    this.metrics.closed({
      outcome: s.outcome, code: s.code, bytesIn, bytesOut, durationS: durationMs / 1000,
      connectS: s.connectMs < 0 ? -1 : s.connectMs / 1000, handshakeS: s.handshakeMs < 0 ? -1 : s.handshakeMs / 1000,
    });
    const access = this.#accessLog;
    if (access !== undefined || this.#debugAccess) {
      const record = {
        client: s.clientAddress, sni: s.sni, alpn: s.alpn, target: s.target, endpoint: s.endpoint, attempts: s.attempts, outcome: s.outcome,
        code: s.code, bytesIn, bytesOut, connectMs: s.connectMs, durationMs,
      };
      if (access !== undefined) access.write(record);
      else this.logger.debug({ event: 'access', ...record }, 'access');
    }
    if (this.#draining && this.activeConnections === 0) this.#drainWaiter?.();
  }

  /** The daemon's active-check states (IPC `health`): down/drain targets get no new connections. */
  applyHealth(states: HealthStates): void {
    const wentDown = this.targets.applyHealth(states);
    // The daemon logs active state changes once for all workers; here only at debug.
    for (const t of wentDown) this.logger.debug({ target: t.raw }, 'target down (active checks)');
    if (wentDown.length === 0 || this.spec.onTargetDown !== 'close') return;
    const down = new Set<TargetState>(wentDown);
    let closed = 0;
    for (const s of [...this.#sessions, ...this.#nativeSessions]) {
      if (s.targetState === null || !down.has(s.targetState)) continue;
      s.destroy('upstream-error', 'ERR_TARGET_DOWN', true);
      closed++;
    }
    if (closed > 0) this.logger.info({ targets: wentDown.map((t) => t.raw), closed }, 'reset connections to targets marked down (OnTargetDown "close")');
  }

  targetsReport(): TargetsReport {
    return { targets: this.targets.reports(), panic: this.targets.panic };
  }

  #targetChanged(state: TargetState): void {
    const ejected = state.ejected(this.targets.now());
    this.logger.info({ target: state.raw, lastError: state.lastError, until: ejected ? new Date(state.ejectedUntil).toISOString() : undefined }, ejected ? 'target ejected (passive health)' : 'target back in service');
    this.#reporter?.changed();
  }

  #panicChanged(pool: TargetPool): void {
    // Once per episode each way: the pool enters panic on a pick and stays until a pick finds a usable target.
    if (pool.panic) this.logger.warn({ pool: pool.name, targets: pool.entries.map((e) => e.state.raw) }, 'panic: no usable target in the pool, using all of them');
    else this.logger.info({ pool: pool.name }, 'panic over: the pool has a usable target again');
    this.#reporter?.changed();
  }

  /** The figures the daemon asks for on every scrape: counters so far, gauges right now. */
  metricsSnapshot(): MetricsSnapshot {
    // Per-target gauges and states from the target table (O(targets), not O(sessions)).
    const reports = this.targets.reports();
    const targetActive: Record<string, number> = {};
    for (const r of reports) targetActive[r.target] = r.activeConnections;
    const d = this.dns.stats();
    const snap = this.metrics.snapshot({
      activeConnections: this.activeConnections,
      targetActive,
      dns: { hit: d.hits, miss: d.queries, stale: d.staleServed, error: this.#dnsErrors },
    });
    // Without active checks nothing will ever decide 'unknown': such a target is up until ejected.
    const checked = this.spec.healthCheck !== null;
    return { ...snap, targets: reports.map((r) => ({ target: r.target, state: r.state === 'unknown' && !checked ? 'up' : r.state })) };
  }

  counters(): ListenerCounters {
    const m = this.metrics.snapshot({ activeConnections: this.activeConnections, targetActive: {}, dns: { hit: 0, miss: 0, stale: 0, error: 0 } });
    let closed = 0;
    for (const n of Object.values(m.connections)) closed += n;
    return { activeConnections: m.activeConnections, totalConnections: closed + m.activeConnections, failedConnections: m.connections['connect-failed'] ?? 0, bytesIn: m.bytesIn, bytesOut: m.bytesOut };
  }

  /** True when the native engine accepts and connects for this app (no Node socket per connection). */
  get acceptsNatively(): boolean {
    return this.#native !== null && this.#lids.length + this.#servers.length > 0 && this.#servers.length === 0;
  }

  get activeConnections(): number {
    return this.#sessions.size + this.#nativeSessions.size;
  }

  get draining(): boolean {
    return this.#draining;
  }

  /**
   * Stop accepting, wait for open sessions up to drainTimeoutMs, then close the rest. With `handOver`
   * (a rollout, and the app's HandOver not false) forwarding sessions are first handed to it, for up
   * to HANDOVER_WINDOW_MS (one not at a clean point yet — pending writes, still inspecting — is
   * tried again); what cannot move (TLS terminated, half-closed, inspecting) drains as before.
   */
  async drain(timeoutMs: number = this.spec.drainTimeoutMs, handOver?: (h: HandOff) => void, adoptionsSettled?: () => Promise<void>): Promise<{ closedByTimeout: number; handedOver?: number }> {
    if (this.#draining) return { closedByTimeout: 0 };
    this.#draining = true;
    this.#reporter?.close();
    await this.#closeServers();
    this.#terminator?.close();
    // Sessions handed to us whose second half is still on its way (the daemon sent `drain` in
    // between): they become sessions here first, then go on with the rest.
    await adoptionsSettled?.();
    let handedOver = 0;
    if (handOver !== undefined && this.spec.handOver !== false) {
      // Native-engine sessions answer asynchronously (the engine detaches on its loop thread):
      // the window stays open while any answer is due (each comes within the engine's timeout).
      let detaching = 0;
      const moved = (s: Session | NativeSession, h: HandOff): void => {
        const lease = this.#forget(s);
        handOver(lease === undefined ? h : { ...h, state: { ...h.state, lease } });
        handedOver++;
      };
      const open = (): number => this.#sessions.size + this.#nativeSessions.size;
      const ours = (s: Session | NativeSession): boolean => (s instanceof NativeSession ? this.#nativeSessions.has(s) : this.#sessions.has(s));
      for (const until = performance.now() + HANDOVER_WINDOW_MS; open() > 0 && (performance.now() < until || detaching > 0); ) {
        for (const s of [...this.#sessions, ...this.#nativeSessions]) {
          const h = s.handOff();
          if (h === undefined) continue;
          if (!(h instanceof Promise)) {
            moved(s, h);
            continue;
          }
          detaching++;
          void h.then(
            (d) => {
              detaching--;
              if (d === undefined) return;
              if (ours(s)) return moved(s, d);
              // Not ours any more (cannot happen while the window waits for it): nobody takes the fds.
              d.client.destroy();
              d.upstream.destroy();
            },
            (err: unknown) => {
              detaching--;
              this.logger.warn({ err }, 'could not detach a connection for handover; it drains here');
            },
          );
        }
        if (open() > 0) await new Promise((r) => setTimeout(r, 20));
      }
    }
    if (this.activeConnections === 0) {
      this.#stopSweeps();
      return { ...(await this.#drained(0)), ...(handOver === undefined ? {} : { handedOver }) };
    }
    await new Promise<void>((resolve) => {
      const timer = setTimeout(resolve, timeoutMs);
      this.#drainWaiter = () => {
        clearTimeout(timer);
        resolve();
      };
    });
    const left = [...this.#sessions, ...this.#nativeSessions];
    for (const s of left) s.destroy('drained', 'ERR_DRAINED');
    // The native engine closes its pairs on its own thread and reports each once: wait for those
    // reports (bounded), so the counts are final when drain() resolves.
    if (this.activeConnections > 0) {
      await new Promise<void>((resolve) => {
        const timer = setTimeout(resolve, NATIVE_CLOSE_WAIT_MS);
        this.#drainWaiter = () => {
          clearTimeout(timer);
          resolve();
        };
      });
    }
    this.#stopSweeps();
    return { ...(await this.#drained(left.length)), ...(handOver === undefined ? {} : { handedOver }) };
  }

  /**
   * Resume a session handed over by another worker (an older generation, or one stopped by SIGTERM).
   * A target the spec no longer lists: kept (OnTargetRemoved "keep", the default) or closed
   * ("close"). Counted like one accepted here: on its target (least-connections, MaxConnections) and
   * against the app's limits (MaxConnections, PerSource), though never refused by them — it was
   * admitted once already; the ACL is not checked again.
   */
  adopt(client: net.Socket, upstream: net.Socket, state: HandoverSession, fromUpstream: Buffer): void {
    const s = Session.adopt(this, client, upstream, state, fromUpstream, (a) => {
      this.#sessions.add(a);
      const counted = this.targets.adopt(state.target);
      if (counted !== undefined) a.countOn(counted.pool, counted.state);
      if (this.#admission !== null && this.#admission.leases) {
        const t: SessionTicket = { address: state.client ?? '', key: null, holds: 0, closed: false, decided: onDecided, session: a };
        this.#admission.adopt(t, state.lease);
        this.#tickets.set(a, t);
      }
    });
    // Arrived while this worker drains in turn: it drains (or is handed on) with the others; only
    // once the drain is over is it closed (counted here).
    if (this.#drainClosed) return s.destroy('drained', 'ERR_DRAINING');
    if (this.spec.onTargetRemoved === 'close' && !this.#configured().has(state.target)) s.destroy('drained', 'ERR_TARGET_REMOVED');
  }

  #configured(): Set<string> {
    const all = new Set<string>();
    for (const t of this.spec.targets) all.add(t.raw);
    for (const r of this.spec.routes) for (const t of r.targets) all.add(t.raw);
    return all;
  }

  /**
   * A session handed over: gone from here without a count (its new process counts it). Returns the
   * limit leases it held, which go with it (the daemon moves them to the adopter).
   */
  #forget(s: Session | NativeSession): { app: number; slots: number; key: string | null } | undefined {
    if (s instanceof NativeSession) this.#nativeSessions.delete(s);
    else this.#sessions.delete(s);
    if (this.#admission === null) return undefined;
    const t = this.#tickets.get(s);
    if (t === undefined) return undefined;
    this.#tickets.delete(s);
    return this.#admission.handOver(t);
  }

  async #drained(closedByTimeout: number): Promise<{ closedByTimeout: number }> {
    this.#drainClosed = true;
    await this.#accessLog?.close();
    return { closedByTimeout };
  }

  #stopSweeps(): void {
    clearInterval(this.#sweepTimer);
    this.#authority?.close();
  }

  #closeServers(): Promise<void> {
    const servers = this.#servers.splice(0);
    // close() stops accepting at once; its callback waits for connections, which we track ourselves.
    for (const s of servers) s.close();
    // The engine's listening sockets: no longer listening when unlisten() returns; resolved once
    // every connection the engine accepted on them has reached #acceptNative (bounded: the engine
    // may be stopping).
    const lids = this.#lids.splice(0);
    if (lids.length === 0) return Promise.resolve();
    const all = Promise.all(lids.map((lid) => this.#native!.unlisten(lid)));
    return new Promise<void>((resolve) => {
      const timer = setTimeout(resolve, UNLISTEN_WAIT_MS);
      void all.then(() => {
        clearTimeout(timer);
        resolve();
      });
    });
  }
}
