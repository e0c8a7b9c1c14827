// probeTarget: one active health probe of one target, as plain values in (host, port, options) and
// a plain result out. Three kinds, chosen by the options:
//   - TCP: healthy once the connection is established;
//   - Send/Expect: write `send` (if any) once connected, healthy when the reply contains `expect`
//     (or, without `expect`, once `send` is written);
//   - HTTP: `GET <httpPath> HTTP/1.1` with Host and `Connection: close`, healthy when the status is
//     in `expectStatus` (empty = any 2xx).
// A name is resolved first (resolve-host.ts: as the listeners resolve it); one that does not resolve
// fails the probe. Invariants: the whole probe (lookup included) ends within timeoutMs; it settles exactly
// once and never throws or rejects; the socket is destroyed when it settles.
import net from 'node:net';
import { hostResolver } from './resolve-host.ts';
import type { ResolveHost } from './resolve-host.ts';

export interface ProbeOptions {
  readonly timeoutMs: number;
  readonly send: string | null;
  readonly expect: string | null;
  readonly httpPath: string | null;
  readonly expectStatus: readonly number[];
}

export type ProbeResult = { readonly ok: true } | { readonly ok: false; readonly error: string };

/** Keep at most this much of a reply while looking for `expect` or a status line. */
const MAX_REPLY_BYTES = 64 * 1024;

const OK: ProbeResult = { ok: true };

const systemResolve = hostResolver({});

export function probeTarget(host: string, port: number, options: ProbeOptions, resolveHost: ResolveHost = systemResolve): Promise<ProbeResult> {
  return new Promise((resolve) => {
    let socket: net.Socket | undefined;
    let settled = false;
    const settle = (result: ProbeResult): void => {
      if (settled) return;
      settled = true;
      clearTimeout(timer);
      socket?.destroy();
      resolve(result);
    };
    const timer = setTimeout(() => settle({ ok: false, error: `timed out after ${options.timeoutMs} ms` }), options.timeoutMs);
    resolveHost(host).then(
      (address) => {
        if (settled) return;
        socket = exchange(address, port, host, options, settle);
      },
      (err: Error) => settle({ ok: false, error: `cannot resolve "${host}": ${err.message}` }),
    );
  });
}

function exchange(address: string, port: number, host: string, options: ProbeOptions, settle: (r: ProbeResult) => void): net.Socket {
  const request = requestBytes(host, port, options);
  const judge = judgeFor(options);
  const chunks: Buffer[] = [];
  let size = 0;
  const socket = net.connect({ host: address, port, allowHalfOpen: false });
  socket.setNoDelay(true);
  socket.on('error', (err: NodeJS.ErrnoException) => settle({ ok: false, error: `${err.code ?? 'error'} ${formatAddress(address, port)}${err.code ? '' : `: ${err.message}`}` }));
  socket.on('connect', () => {
    if (request === null) {
      if (judge === null) settle(OK);
      return;
    }
    socket.write(request, (err) => {
      if (err === undefined || err === null) {
        if (judge === null) settle(OK);
      }
    });
  });
  socket.on('data', (chunk: Buffer) => {
    if (judge === null || size >= MAX_REPLY_BYTES) return;
    chunks.push(chunk);
    size += chunk.length;
    const verdict = judge(Buffer.concat(chunks), false);
    if (verdict !== undefined) settle(verdict);
  });
  socket.on('end', () => {
    if (judge === null) return;
    settle(judge(Buffer.concat(chunks), true) ?? { ok: false, error: 'connection closed before a reply' });
  });
  socket.on('close', () => settle({ ok: false, error: 'connection closed before a reply' }));
  return socket;
}

function requestBytes(host: string, port: number, options: ProbeOptions): Buffer | null {
  if (options.httpPath !== null) {
    const authority = `${host.includes(':') ? `[${host}]` : host}:${port}`;
    return Buffer.from(`GET ${options.httpPath} HTTP/1.1\r\nHost: ${authority}\r\nUser-Agent: fproxy-health\r\nAccept: */*\r\nConnection: close\r\n\r\n`, 'latin1');
  }
  return options.send === null ? null : Buffer.from(options.send, 'utf8');
}

/**
 * How to read the reply: undefined = keep reading; null = the reply does not matter (TCP, or Send
 * without Expect). `ended` = the peer closed: a verdict is due.
 */
function judgeFor(options: ProbeOptions): ((reply: Buffer, ended: boolean) => ProbeResult | undefined) | null {
  if (options.httpPath !== null) {
    const path = options.httpPath;
    const wanted = options.expectStatus;
    return (reply, ended) => {
      const eol = reply.indexOf('\r\n');
      if (eol < 0) return ended || reply.length >= MAX_REPLY_BYTES ? { ok: false, error: `no HTTP status line from ${path}` } : undefined;
      const m = /^HTTP\/1\.[01] (\d{3})/.exec(reply.subarray(0, eol).toString('latin1'));
      if (m === null) return { ok: false, error: `not an HTTP reply from ${path}: ${JSON.stringify(reply.subarray(0, Math.min(eol, 80)).toString('latin1'))}` };
      const status = Number(m[1]);
      const healthy = wanted.length === 0 ? status >= 200 && status < 300 : wanted.includes(status);
      return healthy ? OK : { ok: false, error: `HTTP ${status} from ${path} (expected ${wanted.length === 0 ? '2xx' : wanted.join(' or ')})` };
    };
  }
  if (options.expect === null) return null;
  const expect = Buffer.from(options.expect, 'utf8');
  return (reply, ended) => {
    if (reply.includes(expect)) return OK;
    if (!ended && reply.length < MAX_REPLY_BYTES) return undefined;
    return { ok: false, error: `reply did not contain ${JSON.stringify(options.expect)} (got ${JSON.stringify(reply.subarray(0, 80).toString('utf8'))})` };
  };
}

function formatAddress(address: string, port: number): string {
  return `${address.includes(':') ? `[${address}]` : address}:${port}`;
}
