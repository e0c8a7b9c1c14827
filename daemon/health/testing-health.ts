// Test support for active health checks: real loopback peers that count what reaches them — a TCP
// server (optionally answering a line), an HTTP health endpoint whose status can be switched (the
// Patroni /primary case), a blackhole whose SYNs go unanswered, a dns2 server — and a recording
// listener entry for the daemon (recording-listener.ts). Every peer is closed in t.after().
// Used by *.test.ts only.
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { once } from 'node:events';
import { readFileSync } from 'node:fs';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import http from 'node:http';
import net from 'node:net';
import { Writable } from 'node:stream';
import type { TestContext } from 'node:test';
import dns2 from 'dns2';
import { createLogger, parseTarget, SPEC_DEFAULTS } from '../../proxy/index.ts';
import type { ListenerSpec, Logger } from '../../proxy/index.ts';
import { runDaemon } from '../daemon.ts';
import type { Daemon } from '../daemon.ts';

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
export async function startHealthEndpoint(t: TestContext, host: string, path: string, status: number, port = 0): Promise<HealthEndpoint> {
  const state = { port: 0, status, requests: [] as string[] };
  const server = http.createServer((req, res) => {
    state.requests.push(`${req.method} ${req.url} ${req.headers.host ?? ''} ${req.headers.connection ?? ''}`);
    res.writeHead(req.url === path ? state.status : 404, { 'content-type': 'text/plain' }).end(req.url === path ? String(state.status) : 'not found');
  });
  server.listen(port, host);
  await once(server, 'listening');
  state.port = (server.address() as net.AddressInfo).port;
  t.after(() => {
    server.closeAllConnections();
    return new Promise<void>((r) => server.close(() => r()));
  });
  return state;
}

export interface PatroniPair {
  /** Data targets "127.0.0.2:P1" and "127.0.0.3:P2" (counting TCP servers). */
  readonly targets: readonly [string, string];
  readonly data: readonly [CountingTcp, CountingTcp];
  /** The health endpoints, one per target, both on `healthPort` (one HealthCheck.Port serves both). */
  readonly health: readonly [HealthEndpoint, HealthEndpoint];
  readonly healthPort: number;
}

/**
 * Two database nodes as Patroni runs them: on 127.0.0.2 and 127.0.0.3, each with a data port and a
 * REST API on the same port number answering 200 on /primary only on the primary (the first), 503
 * on the replica. The second bind reuses the port number the first got from port 0, on another
 * address; if that number is taken there, both are retried.
 */
export async function startPatroniPair(t: TestContext): Promise<PatroniPair> {
  const data = [await startCountingTcp(t, { host: '127.0.0.2' }), await startCountingTcp(t, { host: '127.0.0.3' })] as const;
  for (let attempt = 0; ; attempt++) {
    const first = await startHealthEndpoint(t, '127.0.0.2', '/primary', 200);
    try {
      const second = await startHealthEndpoint(t, '127.0.0.3', '/primary', 503, first.port);
      return { targets: [`127.0.0.2:${data[0].port}`, `127.0.0.3:${data[1].port}`], data, health: [first, second], healthPort: first.port };
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== 'EADDRINUSE' || attempt >= 20) throw err;
    }
  }
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
    targets: targets.map((t) => { const p = parseTarget(t); if (!p.ok) throw new Error(p.reason); return p.target; }),
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

export interface RecordedMessage {
  readonly pid: number;
  readonly msg: { type: string; generation?: number; worker?: number; health?: Record<string, string>; states?: Record<string, string> } & Record<string, unknown>;
}

export interface RecordingDaemon {
  readonly daemon: Daemon;
  readonly configPath: string;
  /** Every message the daemon sent to any of its (recording) listeners, in arrival order per process. */
  records(): RecordedMessage[];
  lines: Record<string, unknown>[];
}

/**
 * The real daemon in this process (runDaemon: config file, watcher, supervisors, health checks,
 * admin endpoint on port 0) whose listeners are recording-listener.ts processes, so a test can
 * read what each listener was sent. No spares: every listener is forked for its generation.
 */
export async function startRecordingDaemon(t: TestContext, config: unknown, env: Record<string, string> = {}): Promise<RecordingDaemon> {
  const dir = await mkdtemp(join(tmpdir(), 'fproxy-health-'));
  const configPath = join(dir, 'config.json');
  const recordFile = join(dir, 'record.ndjson');
  await writeFile(configPath, JSON.stringify(config, null, 2));
  await writeFile(recordFile, '');
  const { logger, lines } = memoryLogger();
  const daemon = await runDaemon({
    configPath,
    adminAddr: '127.0.0.1:0',
    logger,
    spares: 0,
    listenerEntry: new URL('./recording-listener.ts', import.meta.url),
    env: { PATH: process.env.PATH ?? '/usr/bin:/bin', FPROXY_RECORD_FILE: recordFile, ...env },
    timing: { heartbeatMs: 200 },
  });
  t.after(async () => {
    await daemon.stop('test done');
    await rm(dir, { recursive: true, force: true });
  });
  const records = (): RecordedMessage[] =>
    readFileSync(recordFile, 'utf8').split('\n').filter((l) => l !== '').map((l) => JSON.parse(l) as RecordedMessage);
  return { daemon, configPath, records, lines };
}
