// Test support: a real single-member etcd (Debian's etcd-server) on loopback, on ports the kernel
// picks (0) and read back from the process's listening sockets: the client port is the one that
// answers GET /health. Used by *.test.ts only. Skips (with the reason) where etcd is not installed.
import { spawn, spawnSync } from 'node:child_process';
import type { ChildProcess } from 'node:child_process';
import { mkdtemp, rm } from 'node:fs/promises';
import { createServer, connect } from 'node:net';
import type { AddressInfo, Socket } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { TestContext } from 'node:test';
import { waitFor } from '../../proxy/testing/wait-for.ts';

export interface Cleanup {
  after(fn: () => unknown): void;
}

export interface TestEtcd {
  readonly endpoint: string;
  readonly pid: number;
  stop(): Promise<void>;
}

/** Why etcd tests cannot run here, or undefined when they can. */
export function etcdMissing(): string | undefined {
  const r = spawnSync('etcd', ['--version'], { encoding: 'utf8' });
  return r.status === 0 ? undefined : 'etcd is not installed (make deps installs Debian etcd-server)';
}

/** `t`: a test context, or `{ after }` from node:test to share one etcd across a file. */
export interface TestEtcdOptions {
  /** Serve clients over TLS with this server certificate, and require client certificates signed by `clientCa`. */
  readonly tls?: { readonly cert: string; readonly key: string; readonly clientCa: string };
}

export async function startTestEtcd(t: Cleanup, options: TestEtcdOptions = {}): Promise<TestEtcd> {
  const dir = await mkdtemp(join(tmpdir(), 'fproxy-etcd-'));
  const { tls } = options;
  const scheme = tls ? 'https' : 'http';
  const child: ChildProcess = spawn('etcd', [
    ...(tls ? ['--cert-file', tls.cert, '--key-file', tls.key, '--client-cert-auth', '--trusted-ca-file', tls.clientCa] : []),
    '--name', 'solo', '--data-dir', join(dir, 'data'),
    '--listen-client-urls', `${scheme}://127.0.0.1:0`, '--advertise-client-urls', `${scheme}://127.0.0.1:2379`,
    // A single member never dials its peer URL; the advertised one only has to match initial-cluster.
    '--listen-peer-urls', 'http://127.0.0.1:0', '--initial-advertise-peer-urls', 'http://127.0.0.1:2380',
    '--initial-cluster', 'solo=http://127.0.0.1:2380', '--log-level', 'error', '--logger', 'zap',
  ], { stdio: ['ignore', 'ignore', 'pipe'] });
  let stderr = '';
  child.stderr!.on('data', (d: Buffer) => (stderr = (stderr + d.toString()).slice(-4000)));
  const exited = new Promise<void>((r) => child.once('exit', () => r()));
  const stop = async (): Promise<void> => {
    if (child.exitCode === null && child.signalCode === null) child.kill('SIGKILL');
    await exited;
  };
  t.after(async () => {
    await stop();
    await rm(dir, { recursive: true, force: true });
  });
  const pid = child.pid!;
  const port = await waitFor(async () => {
    if (child.exitCode !== null) throw new Error(`etcd exited (${child.exitCode}): ${stderr}`);
    const ports = listeningPorts(pid);
    if (tls) {
      // The peer port answers plain HTTP; the TLS client port answers it with 400 (ready or not: callers retry).
      const plain = await Promise.all(ports.map((p) => fetch(`http://127.0.0.1:${p}/version`).then((r) => r.ok, () => false)));
      return ports.length === 2 && plain.filter(Boolean).length === 1 ? ports[plain.indexOf(false)] : undefined;
    }
    for (const p of ports) {
      const ok = await fetch(`http://127.0.0.1:${p}/health`).then((r) => r.ok, () => false);
      if (ok) return p;
    }
    return undefined;
  }, 20_000, 'etcd answering');
  return { endpoint: `127.0.0.1:${port}`, pid, stop };
}

/** TCP ports process `pid` listens on (ss -ltnp). */
function listeningPorts(pid: number): number[] {
  const out = spawnSync('ss', ['-ltnpH'], { encoding: 'utf8' }).stdout ?? '';
  const ports: number[] = [];
  for (const line of out.split('\n')) {
    if (!line.includes(`pid=${pid},`)) continue;
    const m = /:(\d+)\s+\S+\s+users:/.exec(line);
    if (m) ports.push(Number(m[1]));
  }
  return ports;
}

/** A TCP relay in front of etcd whose link the test can cut (every connection reset, new ones refused) and restore. */
export interface CuttableLink {
  readonly endpoint: string;
  cut(): void;
  restore(): void;
}

export async function startCuttableLink(t: TestContext, to: string): Promise<CuttableLink> {
  const [host, port] = [to.slice(0, to.lastIndexOf(':')), Number(to.slice(to.lastIndexOf(':') + 1))];
  const open = new Set<Socket>();
  let down = false;
  const server = createServer((client) => {
    if (down) return void client.resetAndDestroy();
    const upstream = connect(port, host);
    for (const s of [client, upstream]) {
      open.add(s);
      s.on('error', () => {});
      s.on('close', () => {
        open.delete(s);
        client.destroy();
        upstream.destroy();
      });
    }
    client.pipe(upstream);
    upstream.pipe(client);
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', () => r()));
  t.after(() => {
    for (const s of open) s.destroy();
    return new Promise<void>((r) => server.close(() => r()));
  });
  return {
    endpoint: `127.0.0.1:${(server.address() as AddressInfo).port}`,
    cut() {
      down = true;
      for (const s of open) s.resetAndDestroy();
    },
    restore() {
      down = false;
    },
  };
}
