// Test support for long-lived connections (issue 16): a pure echo server, and a client that sends a
// counter every 100 ms and checks the echoed stream byte for byte. Used by *.test.ts only.
import net from 'node:net';
import { once } from 'node:events';
import { waitFor } from './testing.ts';

/** A pure echo server (no tag: the stream must come back byte for byte). */
export function startPlainEcho(): Promise<{ port: number; close: () => Promise<void> }> {
  return listenEcho((onSocket) => net.createServer({ allowHalfOpen: true }, onSocket));
}

/**
 * Echo every socket of the server `make` builds (plain TCP or TLS), on 127.0.0.1:0; close() ends
 * the open ones too.
 */
export async function listenEcho(make: (onSocket: (s: net.Socket) => void) => net.Server): Promise<{ port: number; close: () => Promise<void> }> {
  const sockets = new Set<net.Socket>();
  const server = make((s) => {
    sockets.add(s);
    s.on('close', () => sockets.delete(s));
    s.on('error', () => {});
    s.pipe(s);
  });
  server.listen(0, '127.0.0.1');
  await once(server, 'listening');
  return { port: (server.address() as net.AddressInfo).port, close: () => new Promise((r) => { for (const s of sockets) s.destroy(); server.close(() => r()); }) };
}

/** A long-lived connection sending "n\n" every 100 ms; `problem` is set on the first wrong byte, close or error. */
export class CounterClient {
  sent = 0;
  received = '';
  problem: string | undefined;
  readonly #socket: net.Socket;
  #timer: NodeJS.Timeout | undefined;
  /** Set by stop(): the close that follows is ours, not a cut. */
  #stopping = false;

  /** Everything sent so far, in order (what must come back). */
  #expected = '';

  constructor(socket: net.Socket, name: string) {
    this.#socket = socket;
    socket.setEncoding('utf8');
    socket.on('data', (d: string) => {
      // Only the new bytes are compared: 200 clients × 10 echoes a second stay cheap for hours.
      const at = this.received.length;
      this.received += d;
      if (this.#expected.slice(at, this.received.length) !== d) this.problem ??= `${name}: stream corrupted: got ${JSON.stringify(this.received.slice(-40))} after ${this.sent} sent`;
    });
    socket.on('error', (err) => {
      if (!this.#stopping) this.problem ??= `${name}: error ${err.message}`;
    });
    socket.on('close', () => {
      if (!this.#stopping) this.problem ??= `${name}: closed after ${this.sent} sent`;
    });
  }

  start(): void {
    this.#timer = setInterval(() => {
      const line = `${this.sent++}\n`;
      this.#expected += line;
      this.#socket.write(line);
    }, 100);
  }

  /** Stop sending; resolves once every byte sent has come back (or a problem). */
  async stop(): Promise<void> {
    clearInterval(this.#timer);
    if (this.#stopping) return;
    const want = this.#expected;
    await waitFor(() => this.received === want || this.problem !== undefined, 10_000, 'the last echoes').catch(() => (this.problem ??= `only ${this.received.length} of ${want.length} bytes came back`));
    this.#stopping = true;
    this.#socket.destroy();
  }
}

