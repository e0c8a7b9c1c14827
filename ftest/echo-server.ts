// startEchoServers: TCP echo targets for local testing (`ftest serve`, and in-process for tests,
// bench and rollout-check). Each connection gets back every byte it sends, in order; with
// `tag`, the reply stream starts once with "PORT:" (so "hello" → "9001:hello", however many
// chunks "hello" came in). Half-close is honoured: when the client ends, the server finishes
// echoing and then ends.
//
// Default host: loopback on both families (127.0.0.1 and ::1, same port), so "localhost" works
// whichever way it resolves and nothing is exposed beyond this machine. Pass a host ("::",
// "0.0.0.0", an address) to listen there only.

import net from 'node:net';
import { once } from 'node:events';
import { formatHostPort } from './address.ts';
import { tagPrefix } from './echo-reply.ts';
import { FtestError } from './errors.ts';

export interface EchoServerOptions {
  /** One server per port; 0 picks a free port. */
  ports: readonly number[];
  /** Listen on this address only; default: 127.0.0.1 and ::1. */
  host?: string;
  tag?: boolean;
}

export interface EchoServers {
  /** The real ports, in the order asked for. */
  readonly ports: readonly number[];
  /** Per port, the addresses bound: ["127.0.0.1:9001", "[::1]:9001"]. */
  readonly addresses: readonly (readonly string[])[];
  /** Stops listening and destroys open connections. */
  close(): Promise<void>;
}

/** Attempts to find a port free on both 127.0.0.1 and ::1 when asked for port 0. */
const DUAL_BIND_ATTEMPTS = 10;

export async function startEchoServers(options: EchoServerOptions): Promise<EchoServers> {
  const servers: net.Server[] = [];
  const sockets = new Set<net.Socket>();
  const close = async () => {
    for (const socket of sockets) socket.destroy();
    await Promise.all(servers.map((server) => new Promise((resolve) => server.close(resolve))));
  };
  const ports: number[] = [];
  const addresses: string[][] = [];
  try {
    for (const wanted of options.ports) {
      const bound = options.host === undefined
        ? await listenLoopback(wanted, options.tag ?? false, sockets)
        : [await listen(options.host, wanted, options.tag ?? false, sockets)];
      servers.push(...bound);
      const port = portOf(bound[0]!);
      ports.push(port);
      addresses.push(bound.map((server) => formatHostPort(hostOf(server), port)));
    }
  } catch (err) {
    await close();
    throw err;
  }
  return { ports, addresses, close };
}

async function listenLoopback(wanted: number, tag: boolean, sockets: Set<net.Socket>): Promise<net.Server[]> {
  for (let attempt = 1; ; attempt++) {
    const v4 = await listen('127.0.0.1', wanted, tag, sockets);
    try {
      return [v4, await listen('::1', portOf(v4), tag, sockets)];
    } catch (err) {
      const code = ((err as Error).cause as NodeJS.ErrnoException | undefined)?.code;
      // No IPv6 on this machine: serve IPv4 only rather than fail.
      if (code === 'EADDRNOTAVAIL' || code === 'EAFNOSUPPORT') return [v4];
      await new Promise((resolve) => v4.close(resolve));
      // A random port free on 127.0.0.1 may be taken on ::1: pick another one.
      if (wanted !== 0 || code !== 'EADDRINUSE' || attempt >= DUAL_BIND_ATTEMPTS) throw err;
    }
  }
}

async function listen(host: string, port: number, tag: boolean, sockets: Set<net.Socket>): Promise<net.Server> {
  let prefix: Buffer | undefined;
  const server = net.createServer({ allowHalfOpen: true, noDelay: true }, (socket) => {
    sockets.add(socket);
    socket.on('close', () => sockets.delete(socket));
    echo(socket, prefix);
  });
  server.listen({ host, port });
  try {
    await once(server, 'listening');
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code ?? 'ERR_UNKNOWN';
    const hint = code === 'EADDRINUSE' ? ': the port is in use; pick another or 0 for any free port' : '';
    throw new FtestError('ERR_FTEST_LISTEN', `Cannot listen on ${formatHostPort(host, port)}: ${code}${hint}`, { cause: err });
  }
  // The real port, also when asked for 0.
  if (tag) prefix = tagPrefix(portOf(server));
  return server;
}

/**
 * Echo on one accepted socket: `tag` (if any) once before the first reply bytes, then every byte,
 * with backpressure; ends after the client ends; errors just end it; idle for `idleMs` → destroyed.
 */
export function echo(socket: net.Socket, tag: Buffer | undefined, idleMs = 10 * 60_000): void {
  let prefix = tag;
  socket.on('data', (chunk: Buffer) => {
    const out = prefix ? Buffer.concat([prefix, chunk]) : chunk;
    prefix = undefined;
    if (!socket.write(out)) socket.pause();
  });
  socket.on('drain', () => socket.resume());
  socket.on('end', () => socket.end());
  // Clients resetting is normal in load tests; the socket just goes away.
  socket.on('error', () => socket.destroy());
  // A connection idle for a long time is a leak in whoever opened it, not something to keep.
  socket.setTimeout(idleMs, () => socket.destroy());
}

function portOf(server: net.Server): number {
  return (server.address() as net.AddressInfo).port;
}

function hostOf(server: net.Server): string {
  return (server.address() as net.AddressInfo).address;
}
