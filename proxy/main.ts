// Listener process entry. Forked by the daemon (one process per app worker and generation); speaks
// proxy/ipc/protocol.ts over the fork channel. Also the engine of `fproxy listen` (runStandalone).
//
// Invariants: exactly one `ready` or `failed` per `start`; `drain` (or losing the daemon, or
// SIGTERM/SIGINT) drains once and exits 0; nothing a client or target does exits the process.
import { AccessLog } from './access-log.ts';
import { asToListener, describeUnknown, type FromListener, type ToListener } from './ipc/protocol.ts';
import { Listener } from './listener.ts';
import { createLogger, type Logger } from './log.ts';
import type { ListenerSpec } from './spec.ts';

let listener: Listener | undefined;
let accessLog: AccessLog | undefined;
let logger: Logger = createLogger({ proc: 'listener' });
let exiting = false;

function send(msg: FromListener): void {
  if (process.connected) process.send?.(msg);
}

async function start(spec: ListenerSpec, generation: number, worker: number): Promise<void> {
  if (listener) return send({ v: 1, type: 'error', error: { code: 'ERR_ALREADY_STARTED', message: 'start received twice' } });
  const bindings = { proc: 'listener', app: spec.app, gen: generation, worker };
  logger = createLogger(bindings);
  try {
    listener = new Listener(spec, { logger, accessLog: openAccessLog(spec, bindings) });
    const ports = await listener.start();
    logger.info({ ports, targets: spec.targets.map((t) => t.raw) }, 'listening');
    send({ v: 1, type: 'ready', ports, pid: process.pid });
  } catch (err) {
    const e = err as { code?: string; message?: string };
    logger.error({ err: e.message }, 'failed to start');
    send({ v: 1, type: 'failed', error: { code: e.code ?? 'ERR_LISTENER_START', message: e.message ?? String(err) } });
    exit(1);
  }
}

async function drainAndExit(reason: string): Promise<void> {
  if (exiting) return;
  exiting = true;
  if (!listener) return exit(0);
  const active = listener.activeConnections;
  logger.info({ reason, activeConnections: active }, 'draining');
  send({ v: 1, type: 'draining', activeConnections: active });
  const { closedByTimeout } = await listener.drain();
  logger.info({ closedByTimeout }, 'drained');
  send({ v: 1, type: 'drained', closedByTimeout, snapshot: listener.metricsSnapshot() });
  exit(0);
}

function exit(code: number): void {
  // Let the last IPC message and log line leave before the process goes.
  setImmediate(() => {
    if (process.connected) process.disconnect();
    process.exit(code);
  });
}

function onMessage(raw: unknown): void {
  const msg: ToListener | undefined = asToListener(raw);
  if (msg === undefined) return send({ v: 1, type: 'error', error: describeUnknown(raw) });
  switch (msg.type) {
    case 'start':
      void start(msg.spec, msg.generation, msg.worker);
      break;
    case 'ping':
      send({ v: 1, type: 'pong', seq: msg.seq, activeConnections: listener?.activeConnections ?? 0 });
      break;
    case 'metrics':
      // Before `start` there is nothing to count: no reply, and the daemon's scrape timeout covers it.
      if (listener !== undefined) send({ v: 1, type: 'metrics-snapshot', seq: msg.seq, snapshot: listener.metricsSnapshot() });
      break;
    case 'drain':
      void drainAndExit('daemon asked');
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
  listener = new Listener(spec, { logger, accessLog: openAccessLog(spec, bindings) });
  const ports = await listener.start();
  logger.info({ ports, targets: spec.targets.map((t) => t.raw) }, 'listening');
  return listener;
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
  process.on('uncaughtException', onUncaught);
  process.on('SIGUSR1', onReopen);
  process.on('message', onMessage);
  // The daemon is gone (even SIGKILLed): do not linger holding its ports.
  process.on('disconnect', () => void drainAndExit('daemon disconnected'));
  process.once('SIGTERM', () => void drainAndExit('SIGTERM'));
  process.once('SIGINT', () => void drainAndExit('SIGINT'));
}
