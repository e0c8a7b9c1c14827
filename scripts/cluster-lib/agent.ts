// The cluster check's hands inside the lab: runs in the hub namespace (spawned through
// `ip netns exec` with an IPC channel) and does everything that needs the lab's network — serves the
// targets (each answers its name and closes), probes daemons' listeners, reads their /status,
// writes the config to etcd through EtcdSource (so a failed write shows the error the admin API
// would), and runs a bounded background load that counts connections made and failed per daemon.
// Requests: {id, op, ...} → replies {id, ok: true, value} | {id, ok: false, code, message}.
import { connect, createServer } from 'node:net';
import type { Server } from 'node:net';
import { EtcdSource } from '../../daemon/config-source/etcd-source.ts';
import { createDaemonLogger } from '../../daemon/logger.ts';

type Request = { id: number; op: string; [k: string]: unknown };

const servers: Server[] = [];
let source: EtcdSource | undefined;
const load = { running: false, done: Promise.resolve(), counts: new Map<string, { made: number; failed: number; lastError?: string }>() };

/** Connect, read until the peer closes, return what it said (the target's name). */
function probe(host: string, port: number, timeoutMs = 2000): Promise<string> {
  return new Promise((resolve, reject) => {
    const socket = connect({ host, port });
    let text = '';
    const timer = setTimeout(() => socket.destroy(new Error(`no answer from ${host}:${port} within ${timeoutMs} ms`)), timeoutMs);
    socket.setEncoding('utf8');
    socket.on('data', (d: string) => (text += d));
    socket.on('error', (err) => {
      clearTimeout(timer);
      reject(err);
    });
    socket.on('end', () => {
      clearTimeout(timer);
      socket.end();
      text === '' ? reject(new Error(`${host}:${port} closed without an answer`)) : resolve(text.trim());
    });
  });
}

const ops: Record<string, (r: Request) => Promise<unknown>> = {
  async targets(r) {
    for (const { name, host, port } of r.targets as { name: string; host: string; port: number }[]) {
      const server = createServer((s) => {
        s.on('error', () => {});
        s.end(`${name}\n`);
      });
      await new Promise<void>((ok, fail) => server.once('error', fail).listen(port, host, () => ok()));
      servers.push(server);
    }
    return servers.length;
  },
  async probe(r) {
    return probe(r.host as string, r.port as number);
  },
  /** Probe until the answer is `expect` (every ~10 ms, up to `deadlineMs`); resolves with the ms it took from `since` (epoch ms). */
  async until(r) {
    const deadline = Date.now() + (r.deadlineMs as number);
    let last = '';
    for (;;) {
      last = await probe(r.host as string, r.port as number).catch((err: Error) => `error: ${err.message}`);
      if (last === r.expect) return Date.now() - (r.since as number);
      if (Date.now() > deadline) throw new Error(`${r.host}:${r.port} still answers "${last}", not "${r.expect}", after ${r.deadlineMs} ms`);
      await new Promise((ok) => setTimeout(ok, 10));
    }
  },
  async http(r) {
    const res = await fetch(r.url as string, { signal: AbortSignal.timeout(3000) });
    return { status: res.status, body: await res.text() };
  },
  async source(r) {
    source = new EtcdSource(r.url as string, { logger: createDaemonLogger({ LOG_LEVEL: 'silent' }), stateDir: r.stateDir as string, callTimeoutMs: (r.callTimeoutMs as number) ?? 3000 });
    return true;
  },
  /** Write the config through EtcdSource; resolves with the epoch ms the write returned at and its version. */
  async write(r) {
    const snap = await source!.write(Buffer.from(r.config as string), r.ifVersion as string | undefined);
    return { at: Date.now(), version: snap.version };
  },
  async read() {
    const snap = await source!.read();
    return { version: snap.version, config: snap.bytes.toString() };
  },
  /** Start probing every address in turn until loadStop (bounded: at most 100000 probes, 600 s). */
  async loadStart(r) {
    const addrs = r.addrs as { host: string; port: number }[];
    load.counts = new Map(addrs.map((a) => [`${a.host}:${a.port}`, { made: 0, failed: 0 }]));
    load.running = true;
    const until = Date.now() + 600_000;
    load.done = (async () => {
      for (let n = 0; load.running && n < 100_000 && Date.now() < until; n++) {
        const a = addrs[n % addrs.length]!;
        const c = load.counts.get(`${a.host}:${a.port}`)!;
        try {
          await probe(a.host, a.port);
          c.made++;
        } catch (err) {
          c.failed++;
          c.lastError = (err as Error).message;
        }
      }
    })();
    return true;
  },
  async loadStop() {
    load.running = false;
    await load.done;
    return Object.fromEntries(load.counts);
  },
  async close() {
    await Promise.all(servers.map((s) => new Promise((ok) => s.close(ok))));
    source?.close();
    return true;
  },
};

process.on('message', (msg: Request) => {
  const run = ops[msg.op];
  if (run === undefined) return void process.send!({ id: msg.id, ok: false, code: 'ERR_OP', message: `unknown op ${msg.op}` });
  run(msg).then(
    (value) => process.send!({ id: msg.id, ok: true, value }),
    (err: Error & { code?: string }) => process.send!({ id: msg.id, ok: false, code: err.code ?? 'ERR', message: err.message }),
  );
});
process.on('disconnect', () => process.exit(0));
process.send!({ ready: true });
