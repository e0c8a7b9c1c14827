// Test clients: one-shot TCP and TLS exchanges that never reject (errors are returned), a
// slowloris client, a socket that writes in tiny segments, and `openssl s_client`. Timeouts are
// generous (a busy machine): they bound a hang, they are not speed claims.
import net from 'node:net';
import { once } from 'node:events';

export interface Exchange {
  reply: string;
  error?: NodeJS.ErrnoException;
  ms: number;
}

/** Connect, send `data`, half-close, collect the whole reply. Never rejects: errors are returned. */
export function exchange(port: number, data: string | Buffer, host = '127.0.0.1', timeoutMs = 20_000): Promise<Exchange> {
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
    s.setTimeout(opts.timeoutMs ?? 20_000, () => done(Object.assign(new Error('timeout'), { code: 'ETIMEDOUT' })));
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
export async function sClient(port: number, args: string[], input: string, until: RegExp, timeoutMs = 20_000): Promise<{ stdout: string; matched: boolean }> {
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

export interface SlowResult {
  /** From the connect call to the socket closing. */
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
    // From before the connect: the server's deadline starts later, so `ms` never undercounts it.
    const t0 = performance.now();
    let timer: NodeJS.Timeout | undefined;
    let error: NodeJS.ErrnoException | undefined;
    const tick = () => {
      if (s.destroyed) return;
      if (sent < bytes.length) s.write(bytes.subarray(sent, ++sent));
      timer = setTimeout(tick, intervalMs);
    };
    s.on('connect', () => tick());
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

