// The one test echo target: TCP or TLS on loopback port 0; each connection's reply starts once
// with `${tag}:` (when tagged) and then echoes every byte, honouring half-close (it ends once the
// client has ended). It counts connections and records what each sent and, for TLS, the ALPN
// protocol negotiated. (ftest/echo-server.ts is the product's echo server, tagged with the port;
// proxy/ cannot import ftest/, and tests need their own tags, hence this one.)
import net from 'node:net';
import { once } from 'node:events';
import type { TestCert } from './certs.ts';

export interface EchoTarget {
  readonly port: number;
  readonly connections: number;
  /** Every byte each connection sent, in connection order (complete once that connection ended). */
  readonly received: Buffer[];
  /** TLS only: ALPN protocol negotiated on each connection, in order (false = none). */
  readonly alpn: (string | false)[];
  close(): Promise<void>;
}

export interface EchoTargetOptions {
  /** Reply prefix; none when undefined. */
  readonly tag?: string;
  readonly host?: string;
  /** Serve TLS with this cert (and offer these ALPN protocols). */
  readonly tls?: { readonly cert: TestCert; readonly alpnProtocols?: string[] };
}

export async function startEchoTarget(opts: EchoTargetOptions = {}): Promise<EchoTarget> {
  const received: Buffer[] = [];
  const alpn: (string | false)[] = [];
  const sockets = new Set<net.Socket>();
  const onConnection = (s: net.Socket & { alpnProtocol?: string | false | null }): void => {
    const index = received.push(Buffer.alloc(0)) - 1;
    if (opts.tls) alpn.push(s.alpnProtocol ?? false);
    sockets.add(s);
    s.on('close', () => sockets.delete(s));
    s.on('error', () => {});
    let tagged = opts.tag === undefined;
    s.on('data', (d: Buffer) => {
      received[index] = Buffer.concat([received[index]!, d]);
      if (!tagged) {
        tagged = true;
        s.write(`${opts.tag}:`);
      }
      s.write(d);
    });
    s.on('end', () => s.end());
  };
  let server: net.Server;
  if (opts.tls) {
    const tls = await import('node:tls');
    const { cert, alpnProtocols } = opts.tls;
    server = tls.createServer({ cert: cert.pem, key: cert.key, allowHalfOpen: true, ...(alpnProtocols ? { ALPNProtocols: alpnProtocols } : {}) }, onConnection);
    server.on('tlsClientError', () => {});
  } else {
    server = net.createServer({ allowHalfOpen: true }, onConnection);
  }
  server.listen(0, opts.host ?? '127.0.0.1');
  await once(server, 'listening');
  return {
    port: (server.address() as net.AddressInfo).port,
    get connections() { return received.length; },
    received,
    alpn,
    close: async () => {
      for (const s of sockets) s.destroy();
      await new Promise<void>((r) => server.close(() => r()));
    },
  };
}

/** Plain echo, tagged or not (most tests). */
export function startEcho(tag?: string, host = '127.0.0.1'): Promise<EchoTarget> {
  return startEchoTarget({ ...(tag === undefined ? {} : { tag }), host });
}

/** A tagged echo whose `received` the test reads (PROXY headers, plaintext after termination). */
export type Recorder = EchoTarget;
export function startRecorder(tag: string, host = '127.0.0.1'): Promise<Recorder> {
  return startEchoTarget({ tag, host });
}

/** A tagged TLS echo serving `cert`. */
export type TlsTarget = EchoTarget;
export function startTlsEcho(tag: string, cert: TestCert, alpnProtocols?: string[]): Promise<TlsTarget> {
  return startEchoTarget({ tag, tls: { cert, ...(alpnProtocols ? { alpnProtocols } : {}) } });
}
