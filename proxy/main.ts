// Listener process entry. Forked by the daemon (one process per app worker and generation); speaks
// proxy/ipc/protocol.ts over the fork channel. Also the engine of `fproxy listen` (runStandalone).
//
// Invariants: exactly one `ready` or `failed` per `start`; `drain` (or losing the daemon, or
// SIGTERM/SIGINT) drains once and exits 0; nothing a client or target does exits the process, and
// no message the daemon sends does either: every one is validated first (ipc/protocol.ts), a bad
// one answered with its reason.
import { AccessLog } from './access-log.ts';
import type net from 'node:net';
import { IPC_VERSION, parseToListener, type FromListener, type HandoverSession, type HealthStates, type MetricsSnapshot } from './ipc/protocol.ts';
import type { HandOff } from './session.ts';
import { Listener } from './listener.ts';
import { createLogger, logLevelFromEnv, logLinesDropped, type LogLevel, type Logger } from './log.ts';
import type { ListenerSpec } from './spec.ts';

let listener: Listener | undefined;
// Module scope must not throw: the daemon and `fproxy listen` import this file (through index.ts)
// and report an invalid LOG_LEVEL themselves, as one clean line (the daemon checks it before it
// forks any listener).
let logger: Logger = createLogger({ proc: 'listener' }, levelOrInfo());
let accessLog: AccessLog | undefined;

function levelOrInfo(): LogLevel {
  try {
    return logLevelFromEnv();
  } catch {
    return 'info';
  }
}
let exiting = false;

function send(msg: FromListener): void {
  if (process.connected) process.send?.(msg);
}

async function start(spec: ListenerSpec, generation: number, worker: number, health: HealthStates | undefined): Promise<void> {
  if (listener) return send({ v: IPC_VERSION, type: 'error', error: { code: 'ERR_ALREADY_STARTED', message: 'start received twice' } });
  const bindings = { proc: 'listener', app: spec.app, gen: generation, worker };
  logger = createLogger(bindings);
  // What `ps` and `top` show instead of the bundle's path (as nginx and HAProxy name their workers).
  process.title = `fproxy: listener app=${spec.app} gen=${generation} worker=${worker}`;
  try {
    // Inside the try: whatever the constructor throws is answered as `failed`, not a crash.
    listener = new Listener(spec, {
      logger,
      accessLog: openAccessLog(spec, bindings),
      ...(health ? { health } : {}),
      onTargets: (r) => send({ v: IPC_VERSION, type: 'targets', targets: [...r.targets], panic: r.panic }),
      // Limits are the daemon's (they hold for the app, across workers and generations): lease over IPC.
      leases: {
        request: (req) => send({ v: IPC_VERSION, type: 'lease', ...req }),
        giveBack: (ret) => send({ v: IPC_VERSION, type: 'lease-return', ...ret }),
      },
    });
    const ports = await listener.start();
    logger.info(listeningFields(spec, ports), 'listening');
    send({ v: IPC_VERSION, type: 'ready', ports, pid: process.pid });
  } catch (err) {
    const e = err as { code?: string; message?: string };
    // The daemon logs this failure as one line per attempt (with the retry plan); here it is detail.
    logger.debug({ code: e.code, err: e.message }, 'failed to start');
    send({ v: IPC_VERSION, type: 'failed', error: { code: e.code ?? 'ERR_LISTENER_START', message: e.message ?? String(err) } });
    exit(1);
  }
}

async function drainAndExit(reason: string, handOver = false): Promise<void> {
  if (exiting) return;
  exiting = true;
  if (!listener) return exit(0);
  const active = listener.activeConnections;
  logger.info({ reason, activeConnections: active, handOver }, 'draining');
  // drain() closes the servers before its first await: `draining` tells the daemon this process
  // accepts nothing more (an API write is answered on it), so it goes out only after that.
  const drained = listener.drain(undefined, handOver && process.connected ? sendHandOff : undefined, adoptionsSettled);
  send({ v: IPC_VERSION, type: 'draining', activeConnections: active });
  const { closedByTimeout, handedOver } = await drained;
  await handOffsSent();
  logger.info({ closedByTimeout, handedOver }, 'drained');
  const final: FromListener = { v: IPC_VERSION, type: 'drained', closedByTimeout, snapshot: metricsSnapshot(listener) };
  // Behind handed-over sockets this message waits in Node's queue for their ACKs: exit once it is
  // out — or once the daemon is gone (a message still queued then never gets its callback).
  if (process.connected) {
    await new Promise<void>((resolve) => {
      daemonGone = resolve;
      process.once('disconnect', resolve);
      process.send!(final, undefined, {}, () => resolve());
    });
  }
  exit(0);
}

/** The listener's figures plus what is the process's, not the listener's: the log lines it dropped. */
function metricsSnapshot(l: Listener): MetricsSnapshot {
  return { ...l.metricsSnapshot(), logLinesDropped: logLinesDropped() };
}

/** Set while the last message waits to go out: the daemon watch ends that wait when the daemon is gone. */
let daemonGone: (() => void) | undefined;

// ---- connection handover (issue 16 §2): sockets go to the daemon, which relays them to a worker
// of the new generation. One message per socket (Node passes one handle per message).
let handOffSeq = 0;
/** Sockets given to process.send and not yet written out: Node sends one handle at a time (each waits for the daemon's ACK), so exiting before the queue empties would close the rest. */
let handOffsInFlight = 0;
let handOffsFlushed: (() => void) | undefined;
/** The sockets of those sends (a queued one still owns its socket). */
const handOffSockets = new Set<net.Socket>();

/**
 * The daemon went away (killed) with handed-over sockets still queued: Node never calls those
 * sends' callbacks, so the drain would wait for them forever — the listeners seen alive with ppid 1
 * after their daemon died (notes/16.md). Nobody can take those connections now: close them.
 */
function abandonHandOffs(): void {
  if (handOffsInFlight === 0) return;
  logger.warn({ event: 'handover-abandoned', sockets: handOffSockets.size }, 'the daemon went away during a handover; the connections not yet sent are closed');
  for (const s of handOffSockets) s.destroy();
  handOffSockets.clear();
  handOffsInFlight = 0;
  handOffsFlushed?.();
}

function handOffsSent(): Promise<void> {
  if (handOffsInFlight === 0) return Promise.resolve();
  return new Promise((resolve) => (handOffsFlushed = resolve));
}

function sendHandOff(h: HandOff): void {
  const id = ++handOffSeq;
  const parts: ['client' | 'upstream', net.Socket, Buffer][] = [['client', h.client, h.fromClient], ['upstream', h.upstream, h.fromUpstream]];
  for (const [part, socket, pending] of parts) {
    // A socket from our server would be tracked by Node as lent to the daemon (its server's close
    // would then wait on the daemon's answer); it is given away for good.
    (socket as { server?: unknown }).server = null;
    const msg: FromListener = { v: IPC_VERSION, type: 'handover', id, part, session: { ...h.state, pending: pending.toString('base64') } };
    // Destroying our copy once sent settles the server's connection count; the handle is already gone.
    handOffsInFlight++;
    handOffSockets.add(socket);
    process.send!(msg, socket, {}, (err) => {
      if (!handOffSockets.delete(socket)) return; // abandoned already
      if (err) logger.warn({ err, id, part }, 'a handed-over connection could not be sent to the daemon; it is closed');
      socket.destroy();
      if (--handOffsInFlight === 0) handOffsFlushed?.();
    });
  }
}

/** Halves of handed-over sessions waiting for their other half, by "pid:id". */
const adopting = new Map<string, { client?: net.Socket; upstream?: net.Socket; session?: HandoverSession; fromUpstream?: Buffer }>();

function onAdopt(from: number, id: number, part: 'client' | 'upstream', session: HandoverSession, socket: net.Socket | undefined): void {
  if (socket === undefined) return;
  if (listener === undefined) return void socket.destroy();
  // A socket made from a received handle reads at once and, at EOF with nothing buffered, emits
  // 'end' even while paused — and without half-open it would end its write side too. Until the
  // session takes it (its other half may come later): half-open, and errors held (Session.adopt
  // looks at readableEnded / destroyed).
  socket.allowHalfOpen = true;
  socket.on('error', heldError);
  const key = `${from}:${id}`;
  const entry = adopting.get(key) ?? {};
  if (part === 'client') {
    entry.client = socket;
    entry.session = session;
  } else {
    entry.upstream = socket;
    entry.fromUpstream = Buffer.from(session.pending, 'base64');
  }
  if (entry.client === undefined || entry.upstream === undefined) return void adopting.set(key, entry);
  adopting.delete(key);
  listener.adopt(entry.client, entry.upstream, entry.session!, entry.fromUpstream!);
}

/**
 * 'disconnect' is not enough to notice a dead daemon: Node postpones that event while sent handles
 * wait for the daemon's acknowledgement (a handover), and a SIGKILLed daemon never gives it (seen
 * with Node 24: the event never came, `process.connected` was false). So once a second, unref'd:
 * a closed channel or a new parent (we were re-parented) is a daemon gone, and what waits on its
 * acknowledgements is given up.
 */
function watchDaemon(): void {
  if (!process.connected) return; // `fproxy listen`: no daemon to lose
  const parent = process.ppid;
  const timer = setInterval(() => {
    if (process.connected && process.ppid === parent) return;
    clearInterval(timer);
    abandonHandOffs();
    daemonGone?.();
    void drainAndExit('daemon gone');
  }, 1000);
  timer.unref();
}

/** How long a worker stopped by SIGTERM waits for the daemon's `drain` before draining by itself. */
const STOPPING_FALLBACK_MS = 30_000;
let stopping = false;

/**
 * SIGTERM under the daemon (`kill <pid>`, a supervisor's restart): ask for a replacement and keep
 * serving; the daemon answers with `drain` + handOver once the replacement is ready, so the open
 * connections move to it instead of being cut. A second SIGTERM, no daemon, or no listener yet:
 * drain now. (A SIGKILLed or crashed worker can do none of this: its connections die with it.)
 */
function onSigterm(): void {
  if (exiting) return;
  if (stopping || listener === undefined || !process.connected || listener.draining) return void drainAndExit('SIGTERM');
  stopping = true;
  logger.info({ event: 'stopping', activeConnections: listener.activeConnections }, 'SIGTERM: the daemon starts a replacement worker; open connections are handed to it, then this one exits');
  send({ v: IPC_VERSION, type: 'stopping', reason: 'SIGTERM' });
  setTimeout(() => void drainAndExit('SIGTERM (no drain from the daemon)'), STOPPING_FALLBACK_MS).unref();
}

/** Resolves once no handed-over session waits for its second half (at most ADOPT_WAIT_MS). */
const ADOPT_WAIT_MS = 2000;
async function adoptionsSettled(): Promise<void> {
  for (const until = Date.now() + ADOPT_WAIT_MS; adopting.size > 0 && Date.now() < until && process.connected; ) await new Promise((r) => setTimeout(r, 10));
}

function heldError(): void {
  // Before adoption: the socket is destroyed, which Session.adopt sees.
}

function exit(code: number): void {
  // Let the last IPC message and log line leave before the process goes.
  setImmediate(() => {
    if (process.connected) process.disconnect();
    process.exit(code);
  });
}

function onMessage(raw: unknown, handle?: unknown): void {
  const received = parseToListener(raw);
  if (!received.ok) {
    logger.warn({ error: received.error }, 'invalid IPC message from the daemon');
    // A bad `start` is a failed start, answered as one; nothing was started, so we stay up for a valid one.
    if (received.type === 'start') return send({ v: IPC_VERSION, type: 'failed', error: received.error });
    return send({ v: IPC_VERSION, type: 'error', error: received.error });
  }
  const msg = received.msg;
  switch (msg.type) {
    case 'start':
      void start(msg.spec, msg.generation, msg.worker, msg.health);
      break;
    case 'health':
      // Before `start` there is nothing to apply it to; `start.health` carries the states then.
      listener?.applyHealth(msg.states);
      break;
    case 'ping': {
      const t = listener?.targetsReport() ?? { targets: [], panic: false };
      send({ v: IPC_VERSION, type: 'pong', seq: msg.seq, activeConnections: listener?.activeConnections ?? 0, targets: [...t.targets], panic: t.panic });
      break;
    }
    case 'metrics':
      // Before `start` there is nothing to count: no reply, and the daemon's scrape timeout covers it.
      if (listener !== undefined) send({ v: IPC_VERSION, type: 'metrics-snapshot', seq: msg.seq, snapshot: metricsSnapshot(listener) });
      break;
    case 'drain':
      void drainAndExit('daemon asked', msg.handOver === true);
      break;
    case 'adopt':
      onAdopt(msg.from, msg.id, msg.part, msg.session, handle as net.Socket | undefined);
      break;
    case 'lease-grant':
      listener?.onLeaseGrant(msg);
      break;
    case 'lease-recall':
      listener?.onLeaseRecall(msg.key);
      break;
  }
}

/** Serve one spec in this process until SIGTERM/SIGINT (`fproxy listen`). */
export async function runStandalone(spec: ListenerSpec): Promise<Listener> {
  process.on('uncaughtException', onUncaught);
  process.on('SIGUSR1', onReopen);
  process.once('SIGTERM', () => void drainAndExit('SIGTERM'));
  process.once('SIGINT', () => void drainAndExit('SIGINT'));
  const bindings = { proc: 'listener', app: spec.app, gen: 0 };
  logger = createLogger(bindings);
  process.title = `fproxy: listen app=${spec.app}`;
  listener = new Listener(spec, { logger, accessLog: openAccessLog(spec, bindings) });
  const ports = await listener.start();
  logger.info(listeningFields(spec, ports), 'listening');
  return listener;
}

/** The "listening" line: ports, bind addresses when set, the default pool and every route's pool. */
export function listeningFields(spec: ListenerSpec, ports: readonly number[]): Record<string, unknown> {
  return {
    ports,
    ...(spec.listen !== undefined && spec.listen.length > 0 ? { listen: spec.listen } : {}),
    targets: spec.targets.map((t) => t.raw),
    ...(spec.routes.length > 0 ? { routes: spec.routes.map((r) => ({ sni: r.sni, ...(r.alpn.length > 0 ? { alpn: r.alpn } : {}), targets: r.targets.map((t) => t.raw) })) } : {}),
  };
}

/** The app's access log: FPROXY_ACCESS_LOG's file, else the process logger (undefined when the app has none). */
function openAccessLog(spec: ListenerSpec, bindings: Record<string, unknown>): AccessLog | undefined {
  accessLog = spec.accessLog ? AccessLog.open(spec.app, logger, bindings, process.env.FPROXY_ACCESS_LOG) : undefined;
  return accessLog;
}

/**
 * SIGUSR1 (logrotate, or the daemon passing its own on): reopen the access log file. Always
 * handled: without a listener Node would start its inspector on SIGUSR1.
 */
function onReopen(): void {
  accessLog?.reopen();
}

function onUncaught(err: Error): void {
  // A bug, not a client: log it with its stack and exit; the daemon restarts us.
  logger.fatal({ err }, 'uncaught exception');
  process.exit(70);
}

if (import.meta.main) {
  process.title = 'fproxy: listener (spare)';
  process.on('uncaughtException', onUncaught);
  process.on('SIGUSR1', onReopen);
  process.on('message', onMessage);
  // The daemon is gone (even SIGKILLed): do not linger holding its ports.
  process.on('disconnect', () => {
    abandonHandOffs();
    void drainAndExit('daemon disconnected');
  });
  watchDaemon();
  process.on('SIGTERM', onSigterm);
  process.once('SIGINT', () => void drainAndExit('SIGINT'));
}
