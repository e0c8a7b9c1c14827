// Test support (not a test): run the ftest CLI as a real child process, and small loopback
// servers with odd behaviour (reset, silent, fixed reply) for the failure paths. Children are
// killed by the pid we hold; nothing sleeps, everything waits on events or polls a deadline.

import { spawn, type ChildProcess } from 'node:child_process';
import { once } from 'node:events';
import net from 'node:net';
import { fileURLToPath } from 'node:url';

export const FTEST_BIN = fileURLToPath(new URL('../bin/ftest.ts', import.meta.url));

export interface CliResult {
  code: number | null;
  signal: NodeJS.Signals | null;
  stdout: string;
  stderr: string;
}

/** The environment for children: no test-runner or NODE_OPTIONS flags leaking in. */
export function childEnv(extra: Record<string, string> = {}): NodeJS.ProcessEnv {
  const env = { ...process.env, ...extra };
  delete env.NODE_OPTIONS;
  delete env.NODE_TEST_CONTEXT;
  return env;
}

export interface RunningCli {
  readonly child: ChildProcess;
  readonly stdout: () => string;
  readonly stderr: () => string;
  /** Resolves when stdout has at least `count` complete lines (rejects past the deadline). */
  lines(count: number, timeoutMs?: number): Promise<string[]>;
  /** Resolves when the child has exited. */
  exited: Promise<CliResult>;
  /** Kills the child (by pid) if it is still running. */
  kill(signal?: NodeJS.Signals): void;
}

export function startFtest(args: readonly string[]): RunningCli {
  const child = spawn(process.execPath, [FTEST_BIN, ...args], { env: childEnv(), stdio: ['ignore', 'pipe', 'pipe'] });
  let stdout = '';
  let stderr = '';
  const waiters = new Set<() => void>();
  child.stdout!.setEncoding('utf8').on('data', (chunk: string) => {
    stdout += chunk;
    for (const wake of waiters) wake();
  });
  child.stderr!.setEncoding('utf8').on('data', (chunk: string) => (stderr += chunk));
  const exited = new Promise<CliResult>((resolve) => {
    child.once('close', (code, signal) => {
      for (const wake of waiters) wake();
      resolve({ code, signal, stdout, stderr });
    });
  });
  const completeLines = () => stdout.split('\n').slice(0, -1);
  return {
    child,
    stdout: () => stdout,
    stderr: () => stderr,
    exited,
    lines(count, timeoutMs = 10_000) {
      return new Promise((resolve, reject) => {
        const check = () => {
          if (completeLines().length >= count) done(() => resolve(completeLines()));
          else if (child.exitCode !== null || child.signalCode !== null) {
            done(() => reject(new Error(`ftest exited before printing ${count} lines; stdout: ${stdout}; stderr: ${stderr}`)));
          }
        };
        const timer = setTimeout(() => done(() => reject(new Error(`no ${count} lines within ${timeoutMs} ms; stdout: ${stdout}; stderr: ${stderr}`))), timeoutMs);
        const done = (settle: () => void) => {
          clearTimeout(timer);
          waiters.delete(check);
          settle();
        };
        waiters.add(check);
        check();
      });
    },
    kill(signal = 'SIGKILL') {
      if (child.exitCode === null && child.signalCode === null && child.pid !== undefined) process.kill(child.pid, signal);
    },
  };
}

/** Runs ftest to completion; SIGKILLs it after timeoutMs so a hang fails the test instead. */
export async function runFtest(args: readonly string[], timeoutMs = 15_000): Promise<CliResult> {
  const cli = startFtest(args);
  const timer = setTimeout(() => cli.kill(), timeoutMs);
  try {
    return await cli.exited;
  } finally {
    clearTimeout(timer);
  }
}

/** A loopback TCP server running `onConnection`; returns its port and a close that ends it all. */
export async function startServer(
  onConnection: (socket: net.Socket) => void,
  host = '127.0.0.1',
): Promise<{ port: number; close: () => Promise<void> }> {
  const sockets = new Set<net.Socket>();
  const server = net.createServer({ allowHalfOpen: true }, (socket) => {
    sockets.add(socket);
    socket.on('close', () => sockets.delete(socket));
    socket.on('error', () => socket.destroy());
    onConnection(socket);
  });
  server.listen({ host, port: 0 });
  await once(server, 'listening');
  return {
    port: (server.address() as net.AddressInfo).port,
    close: () => {
      for (const socket of sockets) socket.destroy();
      return new Promise((resolve) => server.close(() => resolve()));
    },
  };
}

/** A loopback port that refuses connections, held until the test ends (never bound, released and reused). */
export { closedPort } from '../proxy/testing/ports.ts';

/**
 * Connects, sends the chunks, half-closes, and collects the reply until the server ends. With
 * `lockstep`, each chunk is sent only after the previous one came back, so the server
 * certainly sees them as separate reads.
 */
export async function echoRoundTrip(
  port: number,
  chunks: readonly (string | Buffer)[],
  { host = '127.0.0.1', lockstep = false } = {},
): Promise<Buffer> {
  const socket = net.connect({ host, port, allowHalfOpen: true });
  socket.setTimeout(5000, () => socket.destroy(new Error('echoRoundTrip timed out')));
  await once(socket, 'connect');
  const received: Buffer[] = [];
  let wake = () => {};
  socket.on('data', (chunk: Buffer) => {
    received.push(chunk);
    wake();
  });
  let failure: Error | undefined;
  socket.on('error', (err) => (failure = err));
  socket.on('close', () => wake());
  const ended = once(socket, 'end');
  let sent = Buffer.alloc(0);
  for (const chunk of chunks) {
    sent = Buffer.concat([sent, Buffer.from(chunk)]);
    socket.write(chunk);
    if (lockstep) {
      while (!Buffer.concat(received).subarray(-sent.length).equals(sent)) {
        if (socket.destroyed) throw failure ?? new Error('connection closed before the echo came back');
        await new Promise<void>((resolve) => (wake = resolve));
      }
    }
  }
  socket.end();
  await ended;
  socket.destroy();
  return Buffer.concat(received);
}

/**
 * A minimal L4 balancer for tests: connection i goes to 127.0.0.1:ports[order[i % order.length]]
 * (default: plain round-robin), bytes piped both ways, half-close passed on.
 */
export async function startForwarder(ports: readonly number[], order: readonly number[] = ports.map((_, i) => i)) {
  let next = 0;
  return startServer((client) => {
    const port = ports[order[next++ % order.length]!]!;
    const upstream = net.connect({ host: '127.0.0.1', port, allowHalfOpen: true });
    upstream.on('error', () => client.destroy());
    client.on('close', () => upstream.destroy());
    upstream.on('close', () => client.destroy());
    client.pipe(upstream);
    upstream.pipe(client);
  });
}
