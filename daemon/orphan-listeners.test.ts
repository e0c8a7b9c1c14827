// No listener outlives its daemon for longer than its own drain (the "orphans with ppid 1" of
// notes/16.md): however the daemon goes — SIGKILL, SIGTERM, or a new daemon killed in the middle
// of an upgrade — every listener and spare it forked stops accepting at once and exits. A listener
// whose daemon died keeps the connections it has open up to the app's DrainTimeoutMs (the daemon's
// death is no reason to cut them), so one that carries long-lived connections lives that long as an
// orphan, then goes.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import net from 'node:net';
import { once } from 'node:events';
import { readFileSync } from 'node:fs';
import { exchange, startEcho } from '../proxy/testing.ts';
import { CounterClient, startPlainEcho } from './testing-streams.ts';
import { aliveListeners, appConfig, childrenOf, startTestDaemon, waitFor } from './testing.ts';

function title(pid: number): string {
  try {
    return readFileSync(`/proc/${pid}/cmdline`, 'utf8').replaceAll('\0', ' ');
  } catch {
    return '';
  }
}

test('a daemon killed with SIGKILL: its listener releases the port at once, forwards its open connection until DrainTimeoutMs, then exits', async (t) => {
  const echo = await startPlainEcho();
  t.after(() => echo.close());
  const d = await startTestDaemon(t, { Apps: [appConfig('long', [0], [echo.port], { DrainTimeoutMs: 3000 })] });
  const [port] = await d.ports('long');
  await d.running('long');
  const children = await waitFor(async () => {
    const c = childrenOf(d.pid);
    return c.size === 1 + (await d.status()).spares ? c : undefined;
  }, 20_000, 'listener and spares forked');
  const s = net.connect({ port: port!, host: '127.0.0.1' });
  await once(s, 'connect');
  const c = new CounterClient(s, 'long');
  c.start();
  t.after(() => c.stop());
  await waitFor(() => c.received.length >= 4, 10_000, 'the stream echoing');
  d.child.kill('SIGKILL');
  await d.exited;
  await waitFor(async () => (await exchange(port!, 'x', '127.0.0.1', 2000)).error !== undefined, 10_000, 'the port released');
  // Still forwarded by the orphaned listener, byte for byte.
  const before = c.received.length;
  await waitFor(() => c.problem !== undefined || c.received.length >= before + 4, 10_000, 'the open connection still echoing after the daemon died');
  assert.equal(c.problem, undefined);
  await waitFor(() => aliveListeners(children).length === 0, 30_000, 'every listener and spare gone after the drain timeout');
  // The drain's end closed it (a cut that only the daemon could have avoided by being alive).
  await waitFor(() => c.problem !== undefined, 10_000, 'the connection closed by the drain timeout');
  assert.match(c.problem!, /closed|error/);
});

test('a daemon stopped with SIGTERM: every listener and spare it forked is gone when it has exited', async (t) => {
  const echo = await startEcho('one');
  t.after(() => echo.close());
  const d = await startTestDaemon(t, { Apps: [appConfig('alpha', [0], [echo.port], { Workers: 2 })] });
  await d.running('alpha');
  const children = await waitFor(async () => {
    const c = childrenOf(d.pid);
    return c.size === 2 + (await d.status()).spares ? c : undefined;
  }, 20_000, 'listeners and spares forked');
  d.child.kill('SIGTERM');
  assert.deepEqual(await d.exited, { code: 0, signal: null });
  await waitFor(() => aliveListeners(children).length === 0, 20_000, 'every listener and spare gone');
});

test('an upgrade whose new daemon is SIGKILLed while it starts: the new daemon\'s listeners exit, the old daemon keeps serving', async (t) => {
  const echo = await startEcho('one');
  t.after(() => echo.close());
  const d = await startTestDaemon(t, { Apps: [appConfig('alpha', [0], [echo.port], { Workers: 2 })] }, { env: { FPROXY_SPARE_LISTENERS: '0' } });
  const [port] = await d.ports('alpha');
  await d.running('alpha');
  process.kill(d.pid, 'SIGUSR2');
  // The new daemon (a child of the old one) once it has forked a listener of its own.
  const successor = await waitFor(() => [...childrenOf(d.pid).keys()].find((pid) => title(pid).startsWith('fproxy: daemon') && childrenOf(pid).size > 0), 30_000, 'the new daemon forking its listeners', 5);
  const itsChildren = childrenOf(successor);
  process.kill(successor, 'SIGKILL');
  await waitFor(() => aliveListeners(itsChildren).length === 0, 20_000, "the killed daemon's listeners gone");
  await waitFor(async () => (await d.status()).upgrade.state === 'failed', 20_000, 'the upgrade reported failed');
  assert.equal((await d.status()).pid, d.pid);
  assert.equal((await exchange(port!, 'hi')).reply, 'one:hi');
});

test('a daemon SIGKILLed while its listeners hand connections over (a rollout under way): every listener still exits', async (t) => {
  const echo = await startPlainEcho();
  t.after(() => echo.close());
  const config = (n: number) => ({ Apps: [appConfig('long', [0], [echo.port], { Workers: 2, DrainTimeoutMs: 3000, ConnectTimeoutMs: 5000 + n })] });
  const d = await startTestDaemon(t, config(0), { env: { FPROXY_SPARE_LISTENERS: '2' } });
  const [port] = await d.ports('long');
  await d.running('long');
  const clients: CounterClient[] = [];
  t.after(() => Promise.all(clients.map((c) => c.stop())));
  for (let i = 0; i < 60; i++) {
    const s = net.connect({ port: port!, host: '127.0.0.1' });
    await once(s, 'connect');
    clients.push(new CounterClient(s, `long ${i}`));
  }
  clients.forEach((c) => c.start());
  await d.writeConfig(config(1));
  // Kill it as soon as the old generation is being drained (its connections on their way over).
  await waitFor(async () => (await d.app('long'))!.drainingPids.length > 0, 20_000, 'the old generation draining', 5);
  const everyone = new Map(d.listenerPids);
  for (const [pid, start] of childrenOf(d.pid)) everyone.set(pid, start);
  d.child.kill('SIGKILL');
  await d.exited;
  await waitFor(() => aliveListeners(everyone).length === 0, 30_000, 'every listener gone after the daemon died mid-handover');
});
