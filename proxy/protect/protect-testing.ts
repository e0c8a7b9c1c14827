// Test support for protection tests: clients bound to a chosen loopback source, held open or
// expected to be reset. Used by *.test.ts only.
import net from 'node:net';

export interface Held {
  readonly socket: net.Socket;
  /** Resolves when the connection is gone (closed, reset). */
  readonly closed: Promise<{ error: string | undefined; reply: string }>;
  close(): Promise<void>;
}

/**
 * Connect from `from` to 127.0.0.1:port and send `hello`. Resolves 'served' once the echo comes back
 * (the connection is forwarded and stays open), 'reset' if it is reset or closed without a reply.
 */
export function connectFrom(port: number, from = '127.0.0.1', hello = 'hi', timeoutMs = 10_000): Promise<{ verdict: 'served' | 'reset' | 'timeout'; held: Held }> {
  return new Promise((resolve) => {
    const socket = net.connect({ port, host: '127.0.0.1', localAddress: from, allowHalfOpen: true });
    let reply = '';
    let error: string | undefined;
    let settled = false;
    let onClosed!: (v: { error: string | undefined; reply: string }) => void;
    const closed = new Promise<{ error: string | undefined; reply: string }>((r) => (onClosed = r));
    const held: Held = {
      socket,
      closed,
      close: async () => {
        socket.destroy();
        await closed;
      },
    };
    const settle = (verdict: 'served' | 'reset' | 'timeout') => {
      if (settled) return;
      settled = true;
      clearTimeout(timer);
      resolve({ verdict, held });
    };
    const timer = setTimeout(() => settle('timeout'), timeoutMs);
    socket.on('connect', () => socket.write(hello));
    socket.on('data', (d) => {
      reply += d.toString();
      if (reply.includes(hello)) settle('served');
    });
    socket.on('end', () => socket.end());
    socket.on('error', (e: NodeJS.ErrnoException) => (error = e.code ?? e.message));
    socket.on('close', () => {
      onClosed({ error, reply });
      settle('reset');
    });
  });
}
