// The TLS passthrough app of rollout-check ("tls-pass"): one port, two SNI routes
// (a.rollout.test, b.rollout.test), each routed to one of two backend sets that alternate with
// every rewrite, so the app is rolled out on every rewrite. Each backend is a node TLS echo target
// with its own self-signed certificate (scripts/make-test-cert.sh, a fresh key each) that replies
// "TAG:" + the bytes it receives. A reply therefore names its target twice: by the tag, and by the
// certificate the client saw, which must be that target's own (proof that the listener forwarded
// the handshake untouched to the target the SNI routes to).
// Tags: a0 a1 b0 b1 = route letter + set number.
import { execFile } from 'node:child_process';
import { X509Certificate } from 'node:crypto';
import { once } from 'node:events';
import { readFile } from 'node:fs/promises';
import type net from 'node:net';
import { join } from 'node:path';
import tls from 'node:tls';
import { echo } from '../../ftest/echo-server.ts';
import { makeFailure } from '../../ftest/failure.ts';
import type { Failure } from '../../ftest/failure.ts';
import { tlsExchange } from './tls-load.ts';
import type { TlsReply } from './tls-load.ts';

const MAKE_CERT = new URL('../make-test-cert.sh', import.meta.url).pathname;

export const TLS_APP = 'tls-pass';
export const TLS_NAMES = ['a.rollout.test', 'b.rollout.test'] as const;
const LETTERS = ['a', 'b'] as const;
const SETS = [0, 1] as const;

interface Backend {
  readonly tag: string;
  readonly port: number;
  readonly fingerprint256: string;
}

export interface TlsApp {
  /** The app's config entry for rewrite `i`: routes to backend set i % 2. */
  config(i: number, port: number, workers: number): Record<string, unknown>;
  /** The tag that must answer `servername` once rewrite `i` is in effect. */
  wantedTag(i: number, servername: string): string;
  /** Undefined if `reply` came from a target `servername` may reach (either set) with that target's certificate. */
  judge(servername: string, reply: TlsReply): Failure | undefined;
  /** The tag of the target that answered a fresh connection to `port` with this SNI, if judge() accepts it ("wrong (…)" / "failed (…)" otherwise). */
  probe(port: number, servername: string, timeoutMs: number): Promise<string>;
  close(): Promise<void>;
}

export async function startTlsApp(dir: string): Promise<TlsApp> {
  const tags = LETTERS.flatMap((letter) => SETS.map((set) => `${letter}${set}`));
  const certs = await Promise.all(tags.map((tag) => makeCert(dir, tag)));
  const started = await Promise.allSettled(certs.map(startTarget));
  const close = async () => void (await Promise.all(started.map((r) => (r.status === 'fulfilled' ? r.value.close() : undefined))));
  const failed = started.find((r) => r.status === 'rejected');
  if (failed) {
    await close();
    throw new Error(`Cannot start the TLS echo targets: ${(failed.reason as Error).message}`, { cause: failed.reason });
  }
  const ports = started.map((r) => (r.status === 'fulfilled' ? r.value.port : 0));
  const backends = new Map<string, Backend>(certs.map(({ tag, fingerprint256 }, n) => [tag, { tag, port: ports[n]!, fingerprint256 }]));
  const letterOf = (servername: string) => servername.split('.')[0]!;
  const judge = (servername: string, reply: TlsReply): Failure | undefined => {
    const backend = backends.get(reply.tag);
    if (backend === undefined || reply.tag[0] !== letterOf(servername)) {
      return makeFailure('wrongReply', `SNI ${servername} was answered by target "${reply.tag}", which is not on its route`, reply.rttMs);
    }
    if (reply.fingerprint256 !== backend.fingerprint256) {
      return makeFailure('wrongReply', `SNI ${servername}: target "${reply.tag}" answered but the client saw certificate ${reply.fingerprint256}, not that target's ${backend.fingerprint256}`, reply.rttMs);
    }
    return undefined;
  };
  return {
    config: (i, port, workers) => ({
      Name: TLS_APP,
      Ports: [port],
      Tls: { Mode: 'passthrough' },
      Routes: LETTERS.map((letter, n) => ({ Sni: [TLS_NAMES[n]], Targets: [`127.0.0.1:${backends.get(`${letter}${i % 2}`)!.port}`] })),
      Workers: workers,
      DrainTimeoutMs: 5000,
    }),
    wantedTag: (i, servername) => `${letterOf(servername)}${i % 2}`,
    judge,
    probe: async (port, servername, timeoutMs) => {
      const r = await tlsExchange({ port, servername, data: Buffer.from('probe'), timeoutMs });
      if (!r.ok) return `failed (${r.failure.message})`;
      const wrong = judge(servername, r);
      return wrong === undefined ? r.tag : `wrong (${wrong.message})`;
    },
    close,
  };
}

interface TestCert {
  readonly tag: string;
  readonly cert: string;
  readonly key: string;
  readonly fingerprint256: string;
}

async function makeCert(dir: string, tag: string): Promise<TestCert> {
  const name = `${tag}.rollout.test`;
  const certPath = join(dir, `${tag}.crt`);
  const keyPath = join(dir, `${tag}.key`);
  // CN and a SAN name of its own, plus the route's name: certificates differ in key and subject.
  await new Promise<void>((resolve, reject) =>
    execFile('bash', [MAKE_CERT, certPath, keyPath, name, name, `${tag[0]}.rollout.test`], (err, _out, stderr) =>
      err ? reject(new Error(`Cannot make the test certificate for ${name} with ${MAKE_CERT}: ${stderr || err.message}`, { cause: err })) : resolve()),
  );
  const [cert, key] = await Promise.all([readFile(certPath, 'utf8'), readFile(keyPath, 'utf8')]);
  return { tag, cert, key, fingerprint256: new X509Certificate(cert).fingerprint256 };
}

/** A TLS echo target with `cert` on 127.0.0.1 (a free port): replies "TAG:" + the bytes it receives, honouring half-close. */
async function startTarget({ tag, cert, key }: TestCert): Promise<{ port: number; close(): Promise<void> }> {
  const sockets = new Set<net.Socket>();
  const server = tls.createServer({ cert, key, allowHalfOpen: true, noDelay: true }, (socket) => {
    sockets.add(socket);
    socket.on('close', () => sockets.delete(socket));
    echo(socket, Buffer.from(`${tag}:`), 60_000);
  });
  // A client that gives up mid-handshake is the client's business (its side counts the failure).
  server.on('tlsClientError', () => {});
  server.listen({ host: '127.0.0.1', port: 0 });
  await once(server, 'listening');
  return {
    port: (server.address() as net.AddressInfo).port,
    close: async () => {
      for (const socket of sockets) socket.destroy();
      await new Promise((resolve) => server.close(resolve));
    },
  };
}
