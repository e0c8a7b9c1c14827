// The listener process over its IPC contract (proxy/ipc/protocol.ts), as the daemon drives it.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { fork, type ChildProcess } from 'node:child_process';
import { once } from 'node:events';
import net from 'node:net';
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

test('start → ready with the bound ports; ping → pong; metrics → snapshot; drain → drained with the final snapshot and exit 0', async (t) => {
  const echo = await startEcho('t');
  t.after(() => echo.close());
  const { child, next, exited } = spawnListener(t);
  child.send({ v: 1, type: 'start', spec: makeSpec([`127.0.0.1:${echo.port}`]), generation: 3, worker: 0 });
  const ready = await next('ready');
  assert.equal(ready.type === 'ready' && ready.pid, child.pid);
  const port = ready.type === 'ready' ? ready.ports[0]! : 0;
  assert.equal((await exchange(port, 'hi')).reply, 't:hi');

  child.send({ v: 1, type: 'ping', seq: 7 });
  const pong = await next('pong');
  assert.ok(pong.type === 'pong');
  assert.equal(pong.seq, 7);
  assert.equal(pong.activeConnections, 0);

  child.send({ v: 1, type: 'metrics', seq: 8 });
  const reply = await next('metrics-snapshot');
  assert.ok(reply.type === 'metrics-snapshot');
  assert.equal(reply.seq, 8);
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

  child.send({ v: 1, type: 'ping', seq: 2 });
  await waitFor(() => messages.some((m) => m.type === 'pong' && m.seq === 2), 20_000, 'pong 2');
  const pong = messages.find((m) => m.type === 'pong' && m.seq === 2);
  assert.ok(pong?.type === 'pong');
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
