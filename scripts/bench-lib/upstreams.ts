// The upstreams every contender is put in front of (the same ones for all):
// - an nginx HTTP server returning a tiny body (keep-alive and new-connection workloads),
// - an iperf3 server (bulk throughput; control + data connections on one port),
// - an in-process echo "sink" that holds idle connections (idle workload),
// plus the probes that tell a port is served end to end.
import { mkdirSync, writeFileSync } from 'node:fs';
import { request } from 'node:http';
import { connect, createServer } from 'node:net';
import type { Server, Socket } from 'node:net';
import { join } from 'node:path';
import { unusedPort } from './tools.ts';
import { run, start, waitFor } from './proc.ts';
import type { Spawned } from './proc.ts';

export interface Upstream {
  readonly port: number;
  stop(): Promise<void>;
}

/** Can a TCP connection be opened to port? */
export function canConnect(port: number, timeoutMs = 1000): Promise<boolean> {
  return new Promise((resolve) => {
    const s = connect({ port, host: '127.0.0.1' });
    const done = (ok: boolean) => {
      s.destroy();
      resolve(ok);
    };
    s.setTimeout(timeoutMs, () => done(false));
    s.once('connect', () => done(true));
    s.once('error', () => done(false));
  });
}

async function waitListening(what: string, port: number, proc?: Spawned): Promise<void> {
  await waitFor(what, 15_000, async () => {
    if (proc && proc.child.exitCode !== null) throw new Error(`${what} exited with ${proc.child.exitCode}`);
    return (await canConnect(port)) ? true : undefined;
  });
}

// ---- nginx HTTP upstream ----

export async function startHttpUpstream(dir: string, workers: number): Promise<Upstream> {
  const port = unusedPort();
  const prefix = join(dir, 'upstream-nginx');
  mkdirSync(join(prefix, 'logs'), { recursive: true });
  const conf = join(prefix, 'nginx.conf');
  writeFileSync(
    conf,
    `worker_processes ${workers};
worker_rlimit_nofile 20000;
pid ${prefix}/nginx.pid;
error_log ${prefix}/logs/error.log warn;
events { worker_connections 10000; }
http {
  access_log off;
  client_body_temp_path ${prefix}/body;
  proxy_temp_path ${prefix}/proxy;
  fastcgi_temp_path ${prefix}/fastcgi;
  uwsgi_temp_path ${prefix}/uwsgi;
  scgi_temp_path ${prefix}/scgi;
  keepalive_requests 100000000;
  keepalive_timeout 300s;
  default_type text/plain;
  server {
    listen 127.0.0.1:${port} backlog=4096;
    location / { return 200 "ok\\n"; }
  }
}
`,
  );
  const proc = start('nginx', ['-p', prefix, '-e', `${prefix}/logs/error.log`, '-c', conf, '-g', 'daemon off;']);
  await waitListening('upstream nginx', port, proc);
  await waitFor('upstream nginx to answer', 10_000, async () => ((await httpProbe(port)) ? true : undefined));
  return { port, stop: () => proc.stop() };
}

/** One GET on a fresh connection; true on a 200 with body "ok\n". */
export function httpProbe(port: number, timeoutMs = 2000): Promise<boolean> {
  return new Promise((resolve) => {
    const req = request(
      { host: '127.0.0.1', port, path: '/', agent: false, headers: { connection: 'close' }, timeout: timeoutMs },
      (res) => {
        let body = '';
        res.setEncoding('utf8');
        res.on('data', (d: string) => (body += d));
        res.on('end', () => resolve(res.statusCode === 200 && body === 'ok\n'));
        res.on('error', () => resolve(false));
      },
    );
    req.on('timeout', () => req.destroy(new Error('timeout')));
    req.on('error', () => resolve(false));
    req.end();
  });
}

// ---- iperf3 server ----

export async function startIperfServer(): Promise<Upstream> {
  for (let attempt = 1; ; attempt++) {
    const port = unusedPort();
    // --idle-timeout: a server stuck in a half-finished test restarts by itself.
    const proc = start('iperf3', ['-s', '-B', '127.0.0.1', '-p', String(port), '--idle-timeout', '30']);
    try {
      await waitListening('iperf3 server', port, proc);
      return { port, stop: () => proc.stop() };
    } catch (err) {
      await proc.stop();
      // The port was taken meanwhile (EADDRINUSE): try another one.
      if (attempt >= 3) throw err;
    }
  }
}

/** A tiny iperf3 test (64 KiB) through port: the control and data paths both work. */
export async function iperfProbe(port: number): Promise<boolean> {
  const r = await run('iperf3', ['-c', '127.0.0.1', '-p', String(port), '-n', '64K', '--connect-timeout', '2000'], 8000);
  return r.code === 0;
}

// ---- idle sink (in process) ----

export interface Sink extends Upstream {
  /** Connections open on the sink right now. */
  readonly open: () => number;
}

/** Echo server: echoes what it gets, never closes first. */
export async function startSink(): Promise<Sink> {
  const sockets = new Set<Socket>();
  const server: Server = createServer({ allowHalfOpen: false }, (s) => {
    sockets.add(s);
    s.on('data', (d) => s.write(d));
    s.on('error', () => s.destroy());
    s.on('close', () => sockets.delete(s));
  });
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen({ port: 0, host: '127.0.0.1', backlog: 4096 }, resolve);
  });
  const port = (server.address() as { port: number }).port;
  return {
    port,
    open: () => sockets.size,
    stop: async () => {
      for (const s of sockets) s.destroy();
      await new Promise((resolve) => server.close(resolve));
    },
  };
}

/** Connect, send one byte, wait for it back. */
export function echoProbe(port: number, timeoutMs = 2000): Promise<Socket | undefined> {
  return new Promise((resolve) => {
    const s = connect({ port, host: '127.0.0.1' });
    const timer = setTimeout(() => fail(), timeoutMs);
    const fail = () => {
      clearTimeout(timer);
      s.destroy();
      resolve(undefined);
    };
    s.once('error', fail);
    s.once('close', fail);
    s.once('connect', () => s.write('x'));
    s.once('data', () => {
      clearTimeout(timer);
      s.removeListener('close', fail);
      s.removeListener('error', fail);
      s.on('error', () => s.destroy());
      resolve(s);
    });
  });
}
