// Listeners that die or hang are replaced from the last good spec: with exponential backoff
// when they keep failing at start (no restart storm), and the app recovers once the cause goes.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import net from 'node:net';
import { exchange, startEcho } from '../proxy/testing.ts';
import { appConfig, waitFor, startTestDaemon } from './testing.ts';

test('a listener killed with SIGKILL is replaced, with the same spec and port', async (t) => {
  const echo = await startEcho('one');
  t.after(() => echo.close());
  const d = await startTestDaemon(t, { Apps: [appConfig('alpha', [0], [echo.port], { Workers: 2 })] });
  const before = await d.running('alpha');
  assert.equal(before.pids.length, 2, 'two workers');
  const [port] = await d.ports('alpha');
  const victim = before.pids[0]!;
  const killedAt = Date.now();
  process.kill(victim, 'SIGKILL');
  // How fast is a figure (a diagnostic), not a pass/fail bound: a cold start takes seconds on a busy machine.
  const after = await waitFor(async () => {
    const a = await d.app('alpha');
    return a && a.pids.length === 2 && !a.pids.includes(victim) ? a : undefined;
  }, 30_000, 'a replacement worker', 10);
  t.diagnostic(`replaced and ready after ${Date.now() - killedAt} ms`);
  assert.equal(after.generation, 1, 'same generation, same spec');
  assert.deepEqual(after.ports, [port], 'the replacement bound the kernel-picked port again');
  assert.ok(after.pids.includes(before.pids[1]!), 'the other worker was not touched');
  assert.equal(after.lastError?.code, 'ERR_LISTENER_CRASHED', 'kept as history');
  assert.equal(after.currentError, null, 'both workers are back: nothing is wrong now');
  assert.equal((await exchange(port!, 'hi')).reply, 'one:hi');
});

test('restarts back off while the port is taken, then the app recovers', async (t) => {
  const echo = await startEcho('one');
  t.after(() => echo.close());
  const d = await startTestDaemon(t, { Apps: [appConfig('alpha', [0], [echo.port])] });
  const before = await d.running('alpha');
  const [port] = await d.ports('alpha');

  // Kill the only listener and take its port (without SO_REUSEPORT) before the restart comes.
  const squatter = net.createServer();
  t.after(() => squatter.close());
  process.kill(before.pids[0]!, 'SIGKILL');
  await waitFor(() => new Promise<boolean>((resolve) => {
    squatter.once('error', () => resolve(false));
    squatter.listen({ port: port!, host: '::', ipv6Only: false }, () => resolve(true));
  }), 20_000, 'the squatter to bind the freed port', 5);

  const failed = await waitFor(async () => {
    const a = await d.app('alpha');
    return a?.state === 'failed' && a.lastError?.code === 'ERR_BIND' ? a : undefined;
  }, 20_000, 'alpha failed with ERR_BIND');
  assert.deepEqual(failed.pids, []);
  const restarts = () => d.logs.filter((l) => l.event === 'listener-restart-scheduled').map((l) => l.delayMs as number);
  // 100 + 200 + 400 + 800 ms of backoff: a handful of attempts, not hundreds.
  await waitFor(() => restarts().length >= 4, 30_000, 'four restart attempts');
  const delays = restarts();
  assert.deepEqual(delays.slice(0, 4), [100, 200, 400, 800], 'exponential backoff from 100 ms');
  // Attempts are counted, not timed: each waits its backoff, so there can only be a handful.
  assert.ok(delays.length <= 6, `${delays.length} attempts so far`);

  await new Promise<void>((r) => squatter.close(() => r()));
  const recovered = await d.running('alpha');
  assert.equal(recovered.generation, 1, 'restarted from the last good spec, same generation');
  assert.equal((await exchange(port!, 'hi')).reply, 'one:hi');
});

test('a hung listener (missed heartbeats) is killed and replaced', async (t) => {
  const echo = await startEcho('one');
  t.after(() => echo.close());
  const d = await startTestDaemon(t, { Apps: [appConfig('alpha', [0], [echo.port])] }, { env: { FPROXY_HEARTBEAT_MS: '1000' } });
  const before = await d.running('alpha');
  const [port] = await d.ports('alpha');
  const victim = before.pids[0]!;
  process.kill(victim, 'SIGSTOP');
  t.after(() => {
    try {
      process.kill(victim, 'SIGKILL');
    } catch {}
  });
  // 1 s heartbeat × 3 missed, plus the restart.
  const after = await waitFor(async () => {
    const a = await d.app('alpha');
    return a && a.pids.length === 1 && a.pids[0] !== victim ? a : undefined;
  }, 30_000, 'a replacement for the hung worker');
  assert.equal(after.lastError?.code, 'ERR_LISTENER_HUNG');
  await d.waitLog((l) => l.event === 'listener-hung', 20_000, 'the hung-listener log');
  assert.equal((await exchange(port!, 'hi')).reply, 'one:hi');
});
