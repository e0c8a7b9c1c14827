// A stand-in listener for daemon tests that must see what the daemon sends to its listeners: it
// speaks the listener side of proxy/ipc/protocol.ts (ready on start, pong on ping, draining then,
// after spec.drainTimeoutMs, drained and exit on drain) without serving anything, and appends
// every message it receives to $FPROXY_RECORD_FILE as one JSON line {pid, msg}. With
// FPROXY_RECORD_EJECT=1 it also reports its first target ejected with 2 open connections, as a
// listener with a target pool would: in a `targets` message after ready (panic false), then in
// every pong (panic true).
// Forked by the daemon as its listener entry (DaemonOptions.listenerEntry). Used by tests only.
import { appendFileSync } from 'node:fs';

const file = process.env.FPROXY_RECORD_FILE;
interface Spec {
  ports: number[];
  drainTimeoutMs: number;
  targets: { raw: string }[];
}
let spec: Spec | undefined;
const eject = process.env.FPROXY_RECORD_EJECT === '1';
const startedAt = Date.now();

function reports(): unknown[] {
  return (spec?.targets ?? []).map((t, i) =>
    i === 0 ? { target: t.raw, state: 'ejected', since: startedAt, lastError: 'ECONNREFUSED (recorded)', activeConnections: 2 } : { target: t.raw, state: 'up', since: startedAt, lastError: null, activeConnections: 0 },
  );
}

function send(msg: unknown): void {
  if (process.connected) process.send?.(msg);
}

process.on('message', (raw: { v?: number; type?: string; seq?: number; spec?: Spec }) => {
  if (file !== undefined) appendFileSync(file, `${JSON.stringify({ pid: process.pid, msg: raw })}\n`);
  switch (raw.type) {
    case 'start':
      spec = raw.spec;
      send({ v: 1, type: 'ready', ports: spec?.ports ?? [], pid: process.pid });
      if (eject) send({ v: 1, type: 'targets', targets: reports(), panic: false });
      break;
    case 'ping':
      send({ v: 1, type: 'pong', seq: raw.seq, activeConnections: 0, totalConnections: 0, failedConnections: 0, bytesIn: 0, bytesOut: 0, ...(eject ? { targets: reports(), panic: true } : {}) });
      break;
    case 'drain':
      send({ v: 1, type: 'draining', activeConnections: 0 });
      setTimeout(() => {
        send({ v: 1, type: 'drained', closedByTimeout: 0 });
        setImmediate(() => process.exit(0));
      }, spec?.drainTimeoutMs ?? 0);
      break;
  }
});
process.on('disconnect', () => process.exit(0));
