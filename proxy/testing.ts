// Test support for the data plane: tagged echo targets, a port nobody listens on, a one-shot
// client, polling with a deadline, and a spec builder. Used by *.test.ts only.
import net from 'node:net';
import { once } from 'node:events';
import assert from 'node:assert/strict';
import { Listener } from './listener.ts';
import { createLogger, type Logger } from './log.ts';
import { parseTarget } from './parse-target.ts';
import { SPEC_DEFAULTS, type ListenerSpec, type TargetSpec } from './spec.ts';

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

/** A target written as a literal in a test; a typo throws with parseTarget's reason. */
export function targetSpec(raw: string): TargetSpec {
  const parsed = parseTarget(raw);
  if (!parsed.ok) throw new Error(parsed.reason);
  return parsed.target;
}

/** A spec for tests: ports default to one ephemeral port (0). */
export function makeSpec(targets: string[], over: Partial<ListenerSpec> = {}): ListenerSpec {
  return {
    ...SPEC_DEFAULTS,
    app: 'test-app',
    ports: [0],
    targets: targets.map(targetSpec),
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

// ---- TLS and byte-level helpers (tls-*.test.ts, proxy-protocol-e2e.test.ts, websocket.test.ts) ----

const MAKE_CERT = new URL('../scripts/make-test-cert.sh', import.meta.url).pathname;

export interface TestCert {
  readonly certPath: string;
  readonly keyPath: string;
  readonly pem: Buffer;
  readonly key: Buffer;
  readonly fingerprint256: string;
}

/**
 * A self-signed cert for `names` (first = CN) in `dir` as `<file>.crt/.key`, via
 * scripts/make-test-cert.sh (renamed into place). `[cn, '-']` makes one without subjectAltName.
 */
export async function makeCert(dir: string, file: string, names: string[]): Promise<TestCert> {
  const { execFile } = await import('node:child_process');
  const { readFile } = await import('node:fs/promises');
  const { X509Certificate } = await import('node:crypto');
  const certPath = `${dir}/${file}.crt`;
  const keyPath = `${dir}/${file}.key`;
  await new Promise<void>((resolve, reject) =>
    execFile('bash', [MAKE_CERT, certPath, keyPath, names[0]!, ...(names[1] === '-' ? ['-'] : names)], (err) => (err ? reject(err) : resolve())));
  const pem = await readFile(certPath);
  return { certPath, keyPath, pem, key: await readFile(keyPath), fingerprint256: new X509Certificate(pem).fingerprint256 };
}

/** A fresh temporary directory, removed after the test. */
export async function tempDir(t: { after: (fn: () => unknown) => void }): Promise<string> {
  const { mkdtemp, rm } = await import('node:fs/promises');
  const { tmpdir } = await import('node:os');
  const dir = await mkdtemp(`${tmpdir()}/fproxy-test-`);
  t.after(() => rm(dir, { recursive: true, force: true }));
  return dir;
}

export interface Recorder {
  readonly port: number;
  /** Every byte each connection sent, in connection order (complete once that connection ended). */
  readonly received: Buffer[];
  close(): Promise<void>;
}

/** A TCP target that records what it receives and replies `${tag}:` + the bytes, honouring half-close. */
export async function startRecorder(tag: string, host = '127.0.0.1'): Promise<Recorder> {
  const received: Buffer[] = [];
  const sockets = new Set<net.Socket>();
  const server = net.createServer({ allowHalfOpen: true }, (s) => {
    const index = received.push(Buffer.alloc(0)) - 1;
    sockets.add(s);
    s.on('close', () => sockets.delete(s));
    s.on('error', () => {});
    let tagged = false;
    s.on('data', (d: Buffer) => {
      received[index] = Buffer.concat([received[index]!, d]);
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
  return {
    port: (server.address() as net.AddressInfo).port,
    received,
    close: async () => {
      for (const s of sockets) s.destroy();
      await new Promise<void>((r) => server.close(() => r()));
    },
  };
}

export interface TlsTarget {
  readonly port: number;
  /** ALPN protocol negotiated on each connection, in order (false = none). */
  readonly alpn: (string | false)[];
  close(): Promise<void>;
}

/** A TLS target serving `cert`: replies `${tag}:` + the bytes of each connection, honouring half-close. */
export async function startTlsEcho(tag: string, cert: TestCert, alpnProtocols?: string[]): Promise<TlsTarget> {
  const tls = await import('node:tls');
  const alpn: (string | false)[] = [];
  const sockets = new Set<net.Socket>();
  const server = tls.createServer({ cert: cert.pem, key: cert.key, allowHalfOpen: true, ...(alpnProtocols ? { ALPNProtocols: alpnProtocols } : {}) }, (s) => {
    alpn.push(s.alpnProtocol ?? false);
    sockets.add(s);
    s.on('close', () => sockets.delete(s));
    s.on('error', () => {});
    let tagged = false;
    s.on('data', (d: Buffer) => {
      if (!tagged) {
        tagged = true;
        s.write(`${tag}:`);
      }
      s.write(d);
    });
    s.on('end', () => s.end());
  });
  server.on('tlsClientError', () => {});
  server.listen(0, '127.0.0.1');
  await once(server, 'listening');
  return {
    port: (server.address() as net.AddressInfo).port,
    alpn,
    close: async () => {
      for (const s of sockets) s.destroy();
      await new Promise<void>((r) => server.close(() => r()));
    },
  };
}

export interface TlsExchange extends Exchange {
  /** The certificate the client was shown. */
  peerCert?: import('node:crypto').X509Certificate;
  alpn?: string | false;
}

/**
 * TLS through `port`: handshake (SNI `servername` unless undefined), send `data`, half-close, collect
 * the whole reply. Never rejects. `socket` lets the caller write bytes (a PROXY header) first.
 */
export function tlsExchange(port: number, data: string, opts: { servername?: string; ALPNProtocols?: string[]; socket?: import('node:stream').Duplex; timeoutMs?: number } = {}): Promise<TlsExchange> {
  return import('node:tls').then((tls) => new Promise((resolve) => {
    const t0 = performance.now();
    const chunks: Buffer[] = [];
    const out: TlsExchange = { reply: '', ms: 0 };
    const options: import('node:tls').ConnectionOptions & { allowHalfOpen: boolean } = {
      ...(opts.socket ? { socket: opts.socket } : { port, host: '127.0.0.1' }),
      // A bare IP as servername would be sent as no SNI anyway; '' makes "no SNI" explicit.
      servername: opts.servername ?? '',
      rejectUnauthorized: false,
      allowHalfOpen: true,
      ...(opts.ALPNProtocols ? { ALPNProtocols: opts.ALPNProtocols } : {}),
    };
    const s = tls.connect(options);
    let settled = false;
    const done = (error?: NodeJS.ErrnoException) => {
      if (settled) return;
      settled = true;
      s.destroy();
      opts.socket?.destroy();
      resolve({ ...out, reply: Buffer.concat(chunks).toString(), ms: performance.now() - t0, ...(error ? { error } : {}) });
    };
    s.setTimeout(opts.timeoutMs ?? 5000, () => done(Object.assign(new Error('timeout'), { code: 'ETIMEDOUT' })));
    s.on('secureConnect', () => {
      out.peerCert = s.getPeerX509Certificate();
      out.alpn = s.alpnProtocol ?? false;
      s.end(data);
    });
    s.on('data', (d: Buffer) => chunks.push(d));
    s.on('end', () => done());
    s.on('error', (e) => done(e));
    s.on('close', () => done());
  }));
}

/**
 * `openssl s_client -connect 127.0.0.1:port ...args` with `input` on stdin (kept open: -ign_eof).
 * Resolves with stdout once it matches `until` or the process exits, and kills it by its pid then
 * (or after `timeoutMs`).
 */
export async function sClient(port: number, args: string[], input: string, until: RegExp, timeoutMs = 5000): Promise<{ stdout: string; matched: boolean }> {
  const { spawn } = await import('node:child_process');
  const child = spawn('openssl', ['s_client', '-connect', `127.0.0.1:${port}`, '-ign_eof', ...args], { stdio: ['pipe', 'pipe', 'pipe'] });
  let stdout = '';
  child.stderr.on('data', () => {});
  child.stdin.on('error', () => {});
  child.stdin.end(input);
  const exited = once(child, 'close');
  const matched = await new Promise<boolean>((resolve) => {
    const timer = setTimeout(() => resolve(false), timeoutMs);
    child.stdout.on('data', (d: Buffer) => {
      stdout += d;
      if (until.test(stdout)) {
        clearTimeout(timer);
        resolve(true);
      }
    });
    child.on('close', () => {
      clearTimeout(timer);
      resolve(until.test(stdout));
    });
  });
  if (child.exitCode === null && child.signalCode === null) child.kill('SIGKILL');
  await exited;
  return { stdout, matched };
}

/** Subject CN / serial as openssl s_client prints the server's certificate ("subject=CN = a.example.test"). */
export function sClientSubject(stdout: string): string | undefined {
  return /^subject=.*?CN\s*=\s*([^,\n]+)/m.exec(stdout)?.[1]?.trim();
}

/** A pino logger that keeps its lines (parsed) in memory, for asserting on warnings and access lines. */
export async function captureLogger(level = 'debug'): Promise<{ logger: import('./log.ts').Logger; lines: Record<string, unknown>[] }> {
  const { pino } = await import('pino');
  const lines: Record<string, unknown>[] = [];
  const logger = pino({ level }, { write: (line: string) => void lines.push(JSON.parse(line) as Record<string, unknown>) });
  return { logger, lines };
}

export interface SlowResult {
  /** From connect to the socket closing. */
  ms: number;
  /** Bytes written before the close. */
  sent: number;
  error?: NodeJS.ErrnoException;
}

/**
 * A slowloris client: connects and writes `bytes` one byte every `intervalMs` (the first at once)
 * until the server closes the connection, then resolves. After the last byte it just waits (giving
 * up with ETIMEDOUT after `giveUpMs` of silence).
 */
export function slowClient(port: number, bytes: Uint8Array, intervalMs: number, giveUpMs = 10_000): Promise<SlowResult> {
  return new Promise((resolve) => {
    const s = net.connect({ port, host: '127.0.0.1', allowHalfOpen: true, noDelay: true });
    s.setTimeout(giveUpMs, () => s.destroy(Object.assign(new Error('server never closed'), { code: 'ETIMEDOUT' })));
    let sent = 0;
    let t0 = 0;
    let timer: NodeJS.Timeout | undefined;
    let error: NodeJS.ErrnoException | undefined;
    const tick = () => {
      if (s.destroyed) return;
      if (sent < bytes.length) s.write(bytes.subarray(sent, ++sent));
      timer = setTimeout(tick, intervalMs);
    };
    s.on('connect', () => {
      t0 = performance.now();
      tick();
    });
    s.on('data', () => {});
    s.on('error', (e) => { error = e; });
    s.on('end', () => s.destroy());
    s.on('close', () => {
      clearTimeout(timer);
      resolve({ ms: performance.now() - t0, sent, ...(error ? { error } : {}) });
    });
  });
}

/**
 * A connected socket whose writes leave in `size`-byte segments, one per event-loop turn, so the
 * listener sees a ClientHello (or PROXY header) arrive in many small chunks. Use as tls.connect's socket.
 */
export async function choppedSocket(port: number, size: number): Promise<import('node:stream').Duplex> {
  const { Duplex } = await import('node:stream');
  const raw = net.connect({ port, host: '127.0.0.1', noDelay: true });
  await once(raw, 'connect');
  const d = new Duplex({
    write(chunk: Buffer, _enc, cb) {
      let at = 0;
      const step = () => {
        if (at >= chunk.length || raw.destroyed) return cb();
        raw.write(chunk.subarray(at, (at += size)));
        setImmediate(step);
      };
      step();
    },
    read() {},
    final(cb) {
      raw.end();
      cb();
    },
    destroy(err, cb) {
      raw.destroy();
      cb(err);
    },
  });
  raw.on('data', (c: Buffer) => d.push(c));
  raw.on('end', () => d.push(null));
  raw.on('error', (e) => d.destroy(e));
  return d;
}


const silentLogger = createLogger({ proc: 'test' }, 'silent');

/** A listener for `spec`, drained when the test ends; `port` is the first bound port. */
export async function listen(t: { after: (fn: () => unknown) => void }, spec: ListenerSpec, logger: Logger = silentLogger): Promise<{ listener: Listener; port: number }> {
  const listener = new Listener(spec, { logger });
  const [port] = await listener.start();
  t.after(() => listener.drain(0));
  return { listener, port: port! };
}

/** mulberry32: small, seeded, good enough to pick fuzz mutations reproducibly. */
export function prng(seed: number): () => number {
  return () => {
    seed = (seed + 0x6d2b79f5) | 0;
    let t = Math.imul(seed ^ (seed >>> 15), 1 | seed);
    t = (t + Math.imul(t ^ (t >>> 7), 61 | t)) ^ t;
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

export const SLOW_MS = 20;

/** No input may be slow to parse (a loop or a quadratic path): the mean over the run must be tiny, and
 *  any input that once took over SLOW_MS (a GC pause or a busy machine can cause that) must stay under it
 *  at its best of 3 when timed again. */
export function assertFast(parse: (b: Uint8Array) => unknown, totalMs: number, pairs: number, slow: Uint8Array[]): void {
  assert.ok(totalMs / pairs < 1, `mean ${(totalMs / pairs).toFixed(3)} ms per pair of calls`);
  for (const input of slow) {
    let best = Infinity;
    for (let k = 0; k < 3; k++) {
      const t0 = performance.now();
      parse(input);
      parse(input.subarray(0, input.length >> 1));
      best = Math.min(best, performance.now() - t0);
    }
    assert.ok(best < SLOW_MS, `${best.toFixed(1)} ms at best for ${Buffer.from(input).toString('hex').slice(0, 200)}`);
  }
}

/** Fuzz step: parse an input and a prefix of it, failing the test (never throwing past it) if the parser throws. */
export function parseBoth<R>(parse: (b: Uint8Array) => R, whole: Uint8Array, prefix: Uint8Array, where: string): { full: R; part: R; ms: number } {
  const t0 = performance.now();
  try {
    const full = parse(whole);
    const part = parse(prefix);
    return { full, part, ms: performance.now() - t0 };
  } catch (err) {
    assert.fail(`${where}: threw ${String(err)} on ${Buffer.from(whole).toString('hex')}`);
  }
}
