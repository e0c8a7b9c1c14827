// The listener process over its IPC contract (proxy/ipc/protocol.ts), as the daemon drives it.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { fork, spawn, type ChildProcess } from 'node:child_process';
import { once } from 'node:events';
import net from 'node:net';
import { fileURLToPath } from 'node:url';
import type { FromListener } from './ipc/protocol.ts';
import { closedPort, exchange, makeSpec, startEcho, waitFor } from './testing.ts';
import { buildListenerEntry } from './bundle.ts';

const MAIN = new URL('./main.ts', import.meta.url);

interface Spawned {
  child: ChildProcess;
  messages: FromListener[];
  next: (type: string) => Promise<FromListener>;
  /** Resolves with the exit code; attached at spawn so an early exit is not missed. */
  exited: Promise<number | null>;
}

function spawnListener(t: { after: (fn: () => unknown) => void }, entry: URL = MAIN): Spawned {
  const child = fork(entry, [], { execArgv: [], env: { PATH: process.env.PATH, LOG_LEVEL: 'silent' }, stdio: ['ignore', 'ignore', 'inherit', 'ipc'] });
  const exited = once(child, 'exit').then(([code]) => code as number | null);
  const messages: FromListener[] = [];
  child.on('message', (m) => messages.push(m as FromListener));
  t.after(() => { if (child.exitCode === null && child.signalCode === null) child.kill('SIGKILL'); });
  const next = async (type: string) => {
    await waitFor(() => messages.some((m) => m.type === type) || child.exitCode !== null, 10_000, `"${type}" message`);
    const m = messages.find((x) => x.type === type);
    assert.ok(m, `expected a "${type}" message, got ${JSON.stringify(messages)}`);
    return m;
  };
  return { child, messages, next, exited };
}

let askSeq = 100;
/** Send `ask` (ping or metrics) with a new seq until its `answer` passes `accept`; that answer. */
async function askUntil(child: ChildProcess, messages: FromListener[], ask: 'ping' | 'metrics', answer: 'pong' | 'metrics-snapshot', accept: (m: FromListener) => boolean): Promise<FromListener> {
  return waitFor(async () => {
    const seq = askSeq++;
    child.send({ v: 1, type: ask, seq });
    const m = await waitFor(() => messages.find((x) => x.type === answer && (x as { seq?: number }).seq === seq), 10_000, `${answer} ${seq}`);
    return accept(m) ? m : undefined;
  }, 10_000, `a ${answer} that has it`);
}

test('start → ready with the bound ports; ping → pong; metrics → snapshot; drain → drained with the final snapshot and exit 0', async (t) => {
  const echo = await startEcho('t');
  t.after(() => echo.close());
  const { child, messages, next, exited } = spawnListener(t);
  child.send({ v: 1, type: 'start', spec: makeSpec([`127.0.0.1:${echo.port}`]), generation: 3, worker: 0 });
  const ready = await next('ready');
  assert.equal(ready.type === 'ready' && ready.pid, child.pid);
  const port = ready.type === 'ready' ? ready.ports[0]! : 0;
  assert.equal((await exchange(port, 'hi')).reply, 't:hi');

  // The listener sees the close a moment after the client does (the native engine reports closes
  // from its loop thread): ask until the answer has it.
  const pong = await askUntil(child, messages, 'ping', 'pong', (m) => m.type === 'pong' && m.activeConnections === 0);
  assert.ok(pong.type === 'pong');
  const reply = await askUntil(child, messages, 'metrics', 'metrics-snapshot', (m) => m.type === 'metrics-snapshot' && m.snapshot.connections.ok === 1);
  assert.ok(reply.type === 'metrics-snapshot');
  assert.deepEqual(reply.snapshot.connections, { ok: 1 });
  assert.equal(reply.snapshot.bytesIn, 2);
  assert.deepEqual(reply.snapshot.attempts, { [`127.0.0.1:${echo.port}`]: { ok: 1 } });
  assert.equal(reply.snapshot.sessionDuration.counts.reduce((a, b) => a + b, 0), 1);

  // A connection after the last scrape still reaches the daemon: in the final snapshot.
  assert.equal((await exchange(port, 'again')).reply, 't:again');
  child.send({ v: 1, type: 'drain' });
  const drained = await next('drained');
  assert.ok(drained.type === 'drained');
  assert.deepEqual(drained.snapshot?.connections, { ok: 2 });
  assert.equal(await exited, 0);
});

test('an unknown message gets an error reply and the process keeps serving', async (t) => {
  const { child, next } = spawnListener(t);
  child.send({ hello: 'world' });
  const err = await next('error');
  assert.ok(err.type === 'error');
  assert.equal(err.error.code, 'ERR_IPC_UNKNOWN');
  child.send({ v: 1, type: 'ping', seq: 1 });
  await next('pong');
});

test('a malformed start → failed ERR_SPEC_INVALID naming the bad path; the process stays up and takes a valid start', async (t) => {
  const echo = await startEcho('m');
  t.after(() => echo.close());
  const { child, messages, next } = spawnListener(t);
  const spec = makeSpec([`127.0.0.1:${echo.port}`]);
  child.send({ v: 1, type: 'start', spec: { ...spec, targets: [{ raw: 'db', host: 'db', port: 'http' }] }, generation: 1, worker: 0 });
  const failed = await next('failed');
  assert.ok(failed.type === 'failed');
  assert.equal(failed.error.code, 'ERR_SPEC_INVALID');
  assert.match(failed.error.message, /spec\.targets\[0\]\.port/);
  child.send({ v: 1, type: 'ping', seq: 2 });
  await next('pong');
  assert.equal(child.exitCode, null);
  child.send({ v: 1, type: 'start', spec, generation: 1, worker: 0 });
  const ready = await next('ready');
  const port = ready.type === 'ready' ? ready.ports[0]! : 0;
  assert.equal((await exchange(port, 'ok')).reply, 'm:ok');
  assert.equal(messages.filter((m) => m.type === 'failed').length, 1);
});

test('a port that cannot be bound → failed with ERR_BIND, and the process exits 1', async (t) => {
  const holder = net.createServer().listen(0, '::');
  await once(holder, 'listening');
  t.after(() => holder.close());
  const port = (holder.address() as net.AddressInfo).port;
  const { child, next, exited } = spawnListener(t);
  child.send({ v: 1, type: 'start', spec: makeSpec(['127.0.0.1:1'], { ports: [port] }), generation: 1, worker: 0 });
  const failed = await next('failed');
  assert.ok(failed.type === 'failed');
  assert.equal(failed.error.code, 'ERR_BIND');
  assert.match(failed.error.message, /EADDRINUSE/);
  assert.equal(await exited, 1);
});

test('losing the daemon (IPC disconnect) drains and exits, freeing the ports', async (t) => {
  const echo = await startEcho();
  t.after(() => echo.close());
  const { child, next, exited } = spawnListener(t);
  child.send({ v: 1, type: 'start', spec: makeSpec([`127.0.0.1:${echo.port}`]), generation: 1, worker: 0 });
  const ready = await next('ready');
  const port = ready.type === 'ready' ? ready.ports[0]! : 0;
  child.disconnect();
  assert.equal(await exited, 0);
  assert.equal((await exchange(port, 'x')).error?.code, 'ECONNREFUSED');
});

test('a daemon killed in the middle of a handover: the listener notices and exits (no orphan holding ports and connections)', { timeout: 60_000 }, async (t) => {
  // Node postpones the 'disconnect' event while sent handles wait for the daemon's ACK, which a
  // dead daemon never gives: the listener must not rely on that event alone.
  const echo = await startEcho('t');
  t.after(() => echo.close());
  const spec = makeSpec([`127.0.0.1:${echo.port}`], { drainTimeoutMs: 120_000 });
  const daemon = spawn(process.execPath, [fileURLToPath(new URL('./testing/dying-daemon.ts', import.meta.url)), JSON.stringify(spec)], { stdio: ['pipe', 'pipe', 'inherit'] });
  let out = '';
  daemon.stdout.setEncoding('utf8').on('data', (d: string) => (out += d));
  const daemonGone = once(daemon, 'exit');
  const { listenerPid, port } = await waitFor(() => (out.includes('\n') ? (JSON.parse(out.split('\n')[0]!) as { listenerPid: number; port: number }) : undefined), 15_000, 'the listener ready');
  const alive = (): boolean => {
    try {
      process.kill(listenerPid, 0);
      return true;
    } catch {
      return false;
    }
  };
  t.after(() => { if (alive()) process.kill(listenerPid, 'SIGKILL'); });
  // Long-lived connections, each proven forwarding (so each is at a clean point to hand over).
  const clients: net.Socket[] = [];
  t.after(() => { for (const c of clients) c.destroy(); });
  for (let i = 0; i < 30; i++) {
    const c = net.connect(port, '127.0.0.1');
    clients.push(c);
    c.write(`c${i}`);
    await once(c, 'data');
  }
  daemon.stdin.write('drain\n');
  const [, signal] = await daemonGone;
  assert.equal(signal, 'SIGKILL', 'the stand-in daemon died at the first handover');
  await waitFor(() => !alive(), 20_000, 'the orphaned listener to exit');
  assert.equal((await exchange(port, 'x')).error?.code, 'ECONNREFUSED', 'its port is free');
});

test('the bundled JavaScript entry (what the daemon forks) serves the same contract', async (t) => {
  const entry = await buildListenerEntry();
  assert.equal(entry.bundled, true, entry.reason);
  assert.match(entry.url.pathname, /listener-[0-9a-f]{16}\/main\.mjs$/);
  const echo = await startEcho('b');
  t.after(() => echo.close());
  const { child, next, exited } = spawnListener(t, entry.url);
  child.send({ v: 1, type: 'start', spec: makeSpec([`127.0.0.1:${echo.port}`]), generation: 1, worker: 0 });
  const ready = await next('ready');
  const port = ready.type === 'ready' ? ready.ports[0]! : 0;
  assert.equal((await exchange(port, 'js')).reply, 'b:js');
  child.send({ v: 1, type: 'drain' });
  assert.equal(await exited, 0);
});

test('health: start.health and `health` messages steer new connections; pong reports targets; a passive ejection sends `targets`', async (t) => {
  const a = await startEcho('a');
  const b = await startEcho('b');
  t.after(() => Promise.all([a.close(), b.close()]));
  const A = `127.0.0.1:${a.port}`;
  const B = `127.0.0.1:${b.port}`;
  const dead = `127.0.0.1:${await closedPort(t)}`;
  const { child, messages, next } = spawnListener(t);
  child.send({ v: 1, type: 'start', spec: makeSpec([A, B, dead]), generation: 1, worker: 0, health: { [A]: 'down' } });
  const ready = await next('ready');
  const port = ready.type === 'ready' ? ready.ports[0]! : 0;
  for (let k = 0; k < 3; k++) assert.equal((await exchange(port, 'x')).reply, 'b:x');

  child.send({ v: 1, type: 'health', states: { [A]: 'up', [B]: 'drain' } });
  await waitFor(async () => (await exchange(port, 'x')).reply === 'a:x', 20_000, 'A back, B drained');
  for (let k = 0; k < 3; k++) assert.equal((await exchange(port, 'x')).reply, 'a:x');

  // Connections keep trying the dead target in turn; after three refusals it is ejected.
  await waitFor(async () => (await exchange(port, 'x'), messages.some((m) => m.type === 'targets')), 20_000, 'a targets message');
  const targets = await next('targets');
  assert.ok(targets.type === 'targets');
  assert.deepEqual(targets.targets.find((r) => r.target === dead)?.state, 'ejected');
  assert.equal(targets.panic, false);

  // Upstream connections close a moment after the client saw its reply: ask until none is open.
  const pong = await askUntil(child, messages, 'ping', 'pong', (m) => m.type === 'pong' && (m.targets ?? []).every((r) => r.activeConnections === 0));
  assert.ok(pong.type === 'pong');
  const reports = pong.targets ?? [];
  assert.deepEqual(reports.map((r) => [r.target, r.state]), [[A, 'up'], [B, 'drain'], [dead, 'ejected']]);
  assert.match(reports[2]!.lastError ?? '', /^ECONNREFUSED /);
  assert.ok(reports.every((r) => typeof r.since === 'number' && r.activeConnections === 0));
  assert.equal(pong.panic, false);
});

test('the daemon gone in the middle of a handover (sockets still queued): the listener closes what it could not send and exits', async (t) => {
  const echo = await startEcho('t');
  t.after(() => echo.close());
  const { child, messages, next, exited } = spawnListener(t);
  child.send({ v: 1, type: 'start', spec: makeSpec([`127.0.0.1:${echo.port}`], { drainTimeoutMs: 60_000 }), generation: 1, worker: 0 });
  const ready = await next('ready');
  const port = ready.type === 'ready' ? ready.ports[0]! : 0;
  const clients: net.Socket[] = [];
  t.after(() => clients.forEach((c) => c.destroy()));
  for (let i = 0; i < 30; i++) {
    const c = net.connect({ port, host: '127.0.0.1' });
    c.on('error', () => {});
    await once(c, 'connect');
    clients.push(c);
  }
  // Every session forwarding (an echo back on each) before the drain.
  await Promise.all(clients.map(async (c) => {
    c.write('x');
    await once(c, 'data');
  }));
  // Node sends one handle at a time, each after the daemon's ACK: gone after the first, the rest stay queued.
  child.on('message', (m: FromListener) => {
    if (m.type === 'handover' && child.connected) child.disconnect();
  });
  child.send({ v: 1, type: 'drain', handOver: true });
  assert.equal(await exited, 0);
  assert.ok(messages.some((m) => m.type === 'handover'), 'a handover was under way');
});
