// Test support for active health checks: real loopback peers that count what reaches them — a TCP
// server (optionally answering a line), an HTTP health endpoint whose status can be switched (the
// Patroni /primary case), a blackhole whose SYNs go unanswered, a dns2 server — and a recording
// listener entry for the daemon (recording-listener.ts). Every peer is closed in t.after().
// Used by *.test.ts only.
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { once } from 'node:events';
import http from 'node:http';
import net from 'node:net';
import { Writable } from 'node:stream';
import type { TestContext } from 'node:test';
import dns2 from 'dns2';
import { createLogger, parseTarget, SPEC_DEFAULTS } from '../../proxy/index.ts';
import type { ListenerSpec, Logger } from '../../proxy/index.ts';

type HealthCheckSpec = NonNullable<ListenerSpec['healthCheck']>;

export interface CountingTcp {
  readonly port: number;
  /** Connections accepted so far. */
  accepted: number;
}

export interface CountingTcpOptions {
  readonly host?: string;
  /** Answers each chunk received (undefined = stay silent). */
  readonly reply?: (data: string) => string | undefined;
  /** Written on accept (a banner); with `end`, the server then closes its side. */
  readonly greeting?: string;
  readonly end?: boolean;
}

/** A TCP server counting accepted connections. */
export async function startCountingTcp(t: TestContext, options: CountingTcpOptions = {}): Promise<CountingTcp> {
  const { host = '127.0.0.1', reply, greeting, end = false } = options;
  const sockets = new Set<net.Socket>();
  const state = { port: 0, accepted: 0 };
  const server = net.createServer((s) => {
    state.accepted++;
    sockets.add(s);
    s.on('close', () => sockets.delete(s));
    s.on('error', () => {});
    if (greeting !== undefined) s.write(greeting);
    if (end) s.end();
    s.on('data', (d) => {
      const answer = reply?.(d.toString('utf8'));
      if (answer !== undefined) s.write(answer);
    });
  });
  server.listen(0, host);
  await once(server, 'listening');
  state.port = (server.address() as net.AddressInfo).port;
  t.after(() => {
    for (const s of sockets) s.destroy();
    return new Promise<void>((r) => server.close(() => r()));
  });
  return state;
}

export interface HealthEndpoint {
  readonly port: number;
  /** Status answered on `path`; every other path gets 404. */
  status: number;
  /** Requests seen, as "GET /primary host-header". */
  readonly requests: string[];
}

/** An HTTP health endpoint (as Patroni's REST API): `path` answers `status`, switchable at run time. */
export async function startHealthEndpoint(t: TestContext, host: string, path: string, status: number): Promise<HealthEndpoint> {
  const state = { port: 0, status, requests: [] as string[] };
  const server = http.createServer((req, res) => {
    state.requests.push(`${req.method} ${req.url} ${req.headers.host ?? ''} ${req.headers.connection ?? ''}`);
    res.writeHead(req.url === path ? state.status : 404, { 'content-type': 'text/plain' }).end(req.url === path ? String(state.status) : 'not found');
  });
  server.listen(0, host);
  await once(server, 'listening');
  state.port = (server.address() as net.AddressInfo).port;
  t.after(() => {
    server.closeAllConnections();
    return new Promise<void>((r) => server.close(() => r()));
  });
  return state;
}

/**
 * A loopback port whose SYNs go unanswered: a listener (python, since Node always accepts) with
 * backlog 0 that never accepts, its queue filled by one parked connection.
 */
export async function startBlackhole(t: TestContext): Promise<number> {
  const py = spawn('python3', ['-c', 'import socket,time\ns=socket.socket()\ns.bind(("127.0.0.1",0))\ns.listen(0)\nprint(s.getsockname()[1],flush=True)\ntime.sleep(120)'], { stdio: ['ignore', 'pipe', 'inherit'] });
  t.after(() => void py.kill('SIGKILL'));
  const [line] = await once(py.stdout!, 'data');
  const port = Number(String(line).trim());
  const parked = net.connect(port, '127.0.0.1').on('error', () => {});
  await once(parked, 'connect');
  t.after(() => void parked.destroy());
  return port;
}

/** A dns2 server on 127.0.0.1 answering A records from `zone`, NXDOMAIN for anything else. */
export async function startDns(t: TestContext, zone: Record<string, string>): Promise<string> {
  const { Packet } = dns2;
  const server = dns2.createServer({
    udp: true,
    handle: (request, send) => {
      const response = Packet.createResponseFromRequest(request);
      const question = request.questions[0];
      const address = question === undefined ? undefined : zone[question.name.toLowerCase()];
      if (address === undefined) response.header.rcode = Packet.RCODE.NXDOMAIN;
      else if (question?.type === Packet.TYPE.A) {
        response.answers.push({ name: question.name, type: Packet.TYPE.A, class: Packet.CLASS.IN, ttl: 60, address } as unknown as (typeof response.answers)[number]);
      }
      void send(response);
    },
  });
  const addresses = await server.listen({ udp: { port: 0, address: '127.0.0.1' } });
  const port = addresses.udp?.port;
  assert.ok(port, 'dns2 server reports its port');
  t.after(() => server.close());
  return `127.0.0.1:${port}`;
}

/** A pino logger into an array (parsed NDJSON lines), for asserting structured log fields. */
export function memoryLogger(): { logger: Logger; lines: Record<string, unknown>[] } {
  const lines: Record<string, unknown>[] = [];
  const sink = new Writable({
    write(chunk: Buffer, _enc, done) {
      for (const line of chunk.toString('utf8').split('\n')) if (line.trim() !== '') lines.push(JSON.parse(line) as Record<string, unknown>);
      done();
    },
  });
  return { logger: createLogger({ proc: 'test' }, 'info', sink), lines };
}

/** A spec for `targets` with everything else default; `check` becomes healthCheck. */
export function specWith(targets: string[], check: Partial<HealthCheckSpec> | null, over: Partial<ListenerSpec> = {}): ListenerSpec {
  return {
    ...SPEC_DEFAULTS,
    app: 'health-app',
    ports: [1],
    targets: targets.map((t) => parseTarget(t)!),
    routes: [],
    workers: 1,
    healthCheck: check === null ? null : { intervalMs: 100, timeoutMs: 100, rise: 1, fall: 1, port: null, send: null, expect: null, httpPath: null, expectStatus: [], ...check },
    ...over,
  };
}

/** Poll `cond` until truthy or `ms` passes (structured conditions only; never a fixed sleep). */
export async function until<T>(cond: () => T | Promise<T>, ms: number, what: string): Promise<NonNullable<T>> {
  const deadline = Date.now() + ms;
  for (;;) {
    const v = await cond();
    if (v) return v as NonNullable<T>;
    if (Date.now() >= deadline) throw new Error(`timed out after ${ms} ms waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 20));
  }
}
