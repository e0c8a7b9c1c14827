// Test support for the data plane: tagged echo targets, a port nobody listens on, a one-shot
// client, polling with a deadline, and a spec builder. Used by *.test.ts only.
import net from 'node:net';
import { once } from 'node:events';
import { parseTarget, SPEC_DEFAULTS, type ListenerSpec } from './spec.ts';

export interface EchoTarget {
  readonly port: number;
  readonly connections: number;
  close(): Promise<void>;
}

/** Echo server on 127.0.0.1:0; each connection's reply starts with `${tag}:` then echoes, honouring half-close. */
export async function startEcho(tag?: string, host = '127.0.0.1'): Promise<EchoTarget> {
  let connections = 0;
  const sockets = new Set<net.Socket>();
  const server = net.createServer({ allowHalfOpen: true }, (s) => {
    connections++;
    sockets.add(s);
    s.on('close', () => sockets.delete(s));
    s.on('error', () => {});
    let tagged = tag === undefined;
    s.on('data', (d) => {
      if (!tagged) {
        tagged = true;
        s.write(`${tag}:`);
      }
      s.write(d);
    });
    s.on('end', () => s.end());
  });
  server.listen(0, host);
  await once(server, 'listening');
  const port = (server.address() as net.AddressInfo).port;
  return {
    port,
    get connections() { return connections; },
    close: async () => {
      for (const s of sockets) s.destroy();
      await new Promise<void>((r) => server.close(() => r()));
    },
  };
}

/** A loopback port with nothing listening (bound, read, closed). */
export async function closedPort(): Promise<number> {
  const s = net.createServer().listen(0, '127.0.0.1');
  await once(s, 'listening');
  const port = (s.address() as net.AddressInfo).port;
  await new Promise<void>((r) => s.close(() => r()));
  return port;
}

export interface Exchange {
  reply: string;
  error?: NodeJS.ErrnoException;
  ms: number;
}

/** Connect, send `data`, half-close, collect the whole reply. Never rejects: errors are returned. */
export function exchange(port: number, data: string | Buffer, host = '127.0.0.1', timeoutMs = 5000): Promise<Exchange> {
  const t0 = performance.now();
  return new Promise((resolve) => {
    const chunks: Buffer[] = [];
    const s = net.connect({ port, host, allowHalfOpen: true });
    const done = (error?: NodeJS.ErrnoException) => {
      s.destroy();
      resolve({ reply: Buffer.concat(chunks).toString(), error, ms: performance.now() - t0 });
    };
    s.setTimeout(timeoutMs, () => done(Object.assign(new Error('timeout'), { code: 'ETIMEDOUT' })));
    s.on('connect', () => s.end(data));
    s.on('data', (d) => chunks.push(d));
    s.on('end', () => done());
    s.on('error', (e) => done(e));
  });
}

/** Poll `cond` every 20 ms until it holds or `ms` passes (then throw with `what`). */
export async function waitFor(cond: () => boolean | Promise<boolean>, ms = 5000, what = 'condition'): Promise<void> {
  const deadline = Date.now() + ms;
  while (Date.now() < deadline) {
    if (await cond()) return;
    await new Promise((r) => setTimeout(r, 20));
  }
  throw new Error(`timed out after ${ms} ms waiting for ${what}`);
}

/** A spec for tests: ports default to one ephemeral port (0). */
export function makeSpec(targets: string[], over: Partial<ListenerSpec> = {}): ListenerSpec {
  return {
    ...SPEC_DEFAULTS,
    app: 'test-app',
    ports: [0],
    targets: targets.map((t) => parseTarget(t)!),
    routes: [],
    workers: 1,
    ...over,
  };
}

/**
 * A loopback port whose SYNs go unanswered: a listener (python, since Node always accepts) with
 * backlog 0 that never accepts, its queue filled by one parked connection.
 */
export async function startBlackhole(): Promise<{ port: number; stop: () => void }> {
  const { spawn } = await import('node:child_process');
  const py = spawn('python3', ['-c', 'import socket,sys,time\ns=socket.socket()\ns.bind(("127.0.0.1",0))\ns.listen(0)\nprint(s.getsockname()[1],flush=True)\ntime.sleep(60)'], { stdio: ['ignore', 'pipe', 'inherit'] });
  const [line] = await once(py.stdout!, 'data');
  const port = Number(String(line).trim());
  // Backlog 0 holds one completed connection; once it is parked there, the queue is full.
  const parked = net.connect(port, '127.0.0.1').on('error', () => {});
  await once(parked, 'connect');
  return { port, stop: () => { parked.destroy(); py.kill('SIGKILL'); } };
}
