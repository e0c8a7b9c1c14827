// dial() and Connection: one client socket to a target, running request/reply exchanges one
// at a time (ping and balancer use one exchange per connection; simulate --keepalive many).
// Every dial and exchange settles exactly once, on the first of: reply judged, peer end,
// socket error, or its own timer; the timer is cleared on every path, so no socket outlives
// its timeout. A connection that failed an exchange is left unusable (bytes may still be in
// flight), and the caller dials again.

import net from 'node:net';
import { performance } from 'node:perf_hooks';
import { formatHostPort, type Target } from './address.ts';
import { replyVerdict } from './echo-reply.ts';
import { formatMs, makeFailure, socketFailure, type Failure } from './failure.ts';

export type DialResult = { ok: true; connection: Connection; dialMs: number } | { ok: false; failure: Failure };

export type ExchangeResult =
  | { ok: true; reply: Buffer; writeMs: number; readMs: number; rttMs: number }
  | { ok: false; reply: Buffer; failure: Failure };

export interface ExchangeOptions {
  timeoutMs: number;
  /** The exact reply wanted; without it, an echo of the data (optionally "TAG:"-prefixed). */
  expect?: Buffer;
}

interface Pending {
  readonly data: Buffer;
  readonly expect: Buffer | undefined;
  readonly startedAt: number;
  readonly timer: NodeJS.Timeout;
  readonly resolve: (result: ExchangeResult) => void;
  writtenAt: number | undefined;
}

export function dial(target: Target, timeoutMs: number): Promise<DialResult> {
  const startedAt = performance.now();
  return new Promise((resolve) => {
    const socket = net.connect({ host: target.host, port: target.port, allowHalfOpen: true, noDelay: true });
    const settle = (result: DialResult) => {
      clearTimeout(timer);
      socket.off('connect', onConnect);
      socket.off('error', onError);
      resolve(result);
    };
    const onConnect = () => {
      const connection = new Connection(socket, target, startedAt);
      settle({ ok: true, connection, dialMs: performance.now() - startedAt });
    };
    // After a failed dial the socket is destroyed; a late error from it must not crash us.
    const abandon = () => socket.on('error', () => {}).destroy();
    const onError = (err: unknown) => {
      abandon();
      settle({ ok: false, failure: socketFailure(err, target.label, performance.now() - startedAt) });
    };
    const timer = setTimeout(() => {
      abandon();
      const failure = makeFailure('timeout', `timed out after ${timeoutMs} ms connecting to ${target.label}`, performance.now() - startedAt);
      settle({ ok: false, failure });
    }, timeoutMs);
    socket.once('connect', onConnect);
    socket.once('error', onError);
  });
}

export class Connection {
  readonly target: Target;
  readonly #socket: net.Socket;
  readonly #startedAt: number;
  #received: Buffer = Buffer.alloc(0);
  #pending: Pending | undefined;
  #peerEnded = false;
  #closed = false;
  #broken = false;
  #exchanges = 0;
  #error: unknown;

  constructor(socket: net.Socket, target: Target, startedAt: number) {
    this.target = target;
    this.#socket = socket;
    this.#startedAt = startedAt;
    socket.on('data', (chunk: Buffer) => {
      this.#received = this.#received.length === 0 ? chunk : Buffer.concat([this.#received, chunk]);
      this.#judge();
    });
    socket.on('end', () => {
      this.#peerEnded = true;
      this.#judge();
    });
    socket.on('error', (err) => {
      this.#error = err;
      if (this.#pending) this.#fail(socketFailure(err, target.label, this.#age()));
    });
    socket.on('close', () => {
      this.#closed = true;
      if (this.#pending) this.#fail(this.#lostFailure());
    });
  }

  /** The endpoint actually connected to, e.g. "[::1]:5001" when "localhost" was dialled. */
  get remote(): string {
    const { remoteAddress, remotePort } = this.#socket;
    return remoteAddress && remotePort ? formatHostPort(remoteAddress, remotePort) : this.target.label;
  }

  /** False once the peer ended, the socket closed or errored, or an exchange failed. */
  get usable(): boolean {
    return !this.#peerEnded && !this.#closed && !this.#broken && this.#error === undefined;
  }

  exchange(data: Buffer, { timeoutMs, expect }: ExchangeOptions): Promise<ExchangeResult> {
    if (this.#pending) throw new Error('Connection.exchange called while an exchange is in flight');
    return new Promise((resolve) => {
      if (!this.usable) {
        resolve({ ok: false, reply: this.#received, failure: this.#lostFailure() });
        return;
      }
      const timer = setTimeout(() => this.#timeOut(), timeoutMs);
      this.#exchanges++;
      const pending: Pending = { data, expect, startedAt: performance.now(), timer, resolve, writtenAt: undefined };
      this.#pending = pending;
      // Errors arrive through the 'error' event; the callback only times the write.
      this.#socket.write(data, (err) => {
        if (!err) pending.writtenAt = performance.now();
      });
      // Bytes that arrived before the request (a server-first banner) count towards the reply.
      this.#judge();
    });
  }

  /** Ends our side and waits (at most graceMs) for the peer to close, then destroys. */
  close(graceMs = 1000): Promise<void> {
    if (this.#closed) return Promise.resolve();
    return new Promise((resolve) => {
      const timer = setTimeout(() => this.#socket.destroy(), graceMs);
      this.#socket.once('close', () => {
        clearTimeout(timer);
        resolve();
      });
      this.#socket.end();
    });
  }

  destroy(): void {
    this.#broken = true;
    this.#socket.destroy();
  }

  #age(): number {
    return performance.now() - this.#startedAt;
  }

  #judge(): void {
    const pending = this.#pending;
    if (!pending) return;
    const verdict = replyVerdict(this.#received, pending.data, pending.expect);
    if (verdict === 'complete') {
      const reply = this.#received;
      this.#received = Buffer.alloc(0);
      const doneAt = performance.now();
      const writtenAt = pending.writtenAt ?? doneAt;
      this.#settle({
        ok: true,
        reply,
        writeMs: writtenAt - pending.startedAt,
        readMs: doneAt - writtenAt,
        rttMs: doneAt - pending.startedAt,
      });
    } else if (verdict === 'wrong') {
      this.#fail(makeFailure('wrongReply', `unexpected reply from ${this.target.label}: ${this.#describeReply(pending)}`, this.#age()));
    } else if (this.#peerEnded) {
      this.#fail(this.#lostFailure());
    }
  }

  /** Why no (more) reply can come: the socket error, or the peer's close. */
  #lostFailure(): Failure {
    if (this.#error !== undefined) return socketFailure(this.#error, this.target.label, this.#age());
    const after = `after ${formatMs(this.#age())} ms`;
    if (this.#received.length === 0) {
      return makeFailure('closed', `connection closed by ${this.target.label} ${after} without a reply`, this.#age());
    }
    const wanted = this.#pending ? ` ${this.#describeReply(this.#pending)}` : '';
    return makeFailure('wrongReply', `connection closed by ${this.target.label} ${after} mid-reply:${wanted}`, this.#age());
  }

  #describeReply(pending: Pending): string {
    const wanted = pending.expect ? JSON.stringify(pending.expect.toString()) : `an echo of ${JSON.stringify(pending.data.toString())}`;
    return `got ${JSON.stringify(preview(this.#received))}, expected ${wanted}`;
  }

  #timeOut(): void {
    const pending = this.#pending;
    if (!pending) return;
    // The first exchange's budget is what the dial left, so count from the dial: "after 300 ms"
    // then matches the timeout the user gave.
    const since = this.#exchanges === 1 ? this.#startedAt : pending.startedAt;
    const waited = Math.round(performance.now() - since);
    const detail = this.#received.length === 0 ? 'nothing received' : `received ${JSON.stringify(preview(this.#received))} so far`;
    this.#fail(makeFailure('timeout', `timed out after ${waited} ms waiting for the reply from ${this.target.label} (${detail})`, this.#age()));
  }

  #fail(failure: Failure): void {
    const reply = this.#received;
    this.#settle({ ok: false, reply, failure });
    this.destroy();
  }

  #settle(result: ExchangeResult): void {
    const pending = this.#pending;
    if (!pending) return;
    this.#pending = undefined;
    clearTimeout(pending.timer);
    pending.resolve(result);
  }
}

function preview(bytes: Buffer): string {
  const text = bytes.subarray(0, 80).toString();
  return bytes.length > 80 ? `${text}…` : text;
}
