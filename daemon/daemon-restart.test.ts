// Listeners that die or hang are replaced from the last good spec: with exponential backoff
// when they keep failing at start (no restart storm), and the app recovers once the cause goes.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import net from 'node:net';
import { exchange, startEcho } from '../proxy/testing.ts';
import { appConfig, freePorts, poll, startTestDaemon } from './testing.ts';

test('a listener killed with SIGKILL is replaced within a second', async (t) => {
  const echo = await startEcho('one');
  t.after(() => echo.close());
  const [port] = await freePorts(1);
  const d = await startTestDaemon(t, { Apps: [appConfig('alpha', [port!], [echo.port], { Workers: 2 })] });
  const before = await poll(async () => {
    const a = await d.app('alpha');
    return a?.state === 'running' && a.pids.length === 2 ? a : undefined;
  }, 10_000, 'two workers');
  const victim = before.pids[0]!;
  const killedAt = Date.now();
  process.kill(victim, 'SIGKILL');
  const after = await poll(async () => {
    const a = await d.app('alpha');
    return a && a.pids.length === 2 && !a.pids.includes(victim) ? a : undefined;
  }, 5000, 'a replacement worker', 10);
  const backMs = Date.now() - killedAt;
  t.diagnostic(`replaced and ready after ${backMs} ms`);
  assert.ok(backMs < 1000, `replaced after ${backMs} ms`);
  assert.equal(after.generation, 1, 'same generation, same spec');
  assert.ok(after.pids.includes(before.pids[1]!), 'the other worker was not touched');
  assert.equal(after.lastError?.code, 'ERR_LISTENER_CRASHED', 'kept as history');
  assert.equal(after.currentError, null, 'both workers are back: nothing is wrong now');
  assert.equal((await exchange(port!, 'hi')).reply, 'one:hi');
});

test('restarts back off while the port is taken, then the app recovers', async (t) => {
  const echo = await startEcho('one');
  t.after(() => echo.close());
  const [port] = await freePorts(1);
  const d = await startTestDaemon(t, { Apps: [appConfig('alpha', [port!], [echo.port])] });
  const before = await poll(async () => {
    const a = await d.app('alpha');
    return a?.state === 'running' && a.pids.length === 1 ? a : undefined;
  }, 10_000, 'alpha running');

  // Kill the only listener and take its port (without SO_REUSEPORT) before the restart comes.
  const squatter = net.createServer();
  t.after(() => squatter.close());
  process.kill(before.pids[0]!, 'SIGKILL');
  await poll(() => new Promise<boolean>((resolve) => {
    squatter.once('error', () => resolve(false));
    squatter.listen({ port: port!, host: '::', ipv6Only: false }, () => resolve(true));
  }), 2000, 'the squatter to bind the freed port', 5);

  const failed = await poll(async () => {
    const a = await d.app('alpha');
    return a?.state === 'failed' && a.lastError?.code === 'ERR_BIND' ? a : undefined;
  }, 5000, 'alpha failed with ERR_BIND');
  assert.deepEqual(failed.pids, []);
  const restarts = () => d.logs.filter((l) => l.msg === 'restarting listener after backoff').map((l) => l.delayMs as number);
  // 100 + 200 + 400 + 800 ms of backoff: a handful of attempts in ~2 s, not hundreds.
  await poll(() => restarts().length >= 4, 5000, 'four restart attempts');
  const delays = restarts();
  assert.deepEqual(delays.slice(0, 4), [100, 200, 400, 800], 'exponential backoff from 100 ms');
  assert.ok(delays.length <= 6, `${delays.length} attempts so far`);

  await new Promise<void>((r) => squatter.close(() => r()));
  const recovered = await poll(async () => {
    const a = await d.app('alpha');
    return a?.state === 'running' && a.pids.length === 1 ? a : undefined;
  }, 8000, 'alpha running again');
  assert.equal(recovered.generation, 1, 'restarted from the last good spec, same generation');
  assert.equal((await exchange(port!, 'hi')).reply, 'one:hi');
});

test('a hung listener (missed heartbeats) is killed and replaced', async (t) => {
  const echo = await startEcho('one');
  t.after(() => echo.close());
  const [port] = await freePorts(1);
  const d = await startTestDaemon(t, { Apps: [appConfig('alpha', [port!], [echo.port])] }, { env: { FPROXY_HEARTBEAT_MS: '1000' } });
  const before = await poll(async () => {
    const a = await d.app('alpha');
    return a?.state === 'running' && a.pids.length === 1 ? a : undefined;
  }, 10_000, 'alpha running');
  const victim = before.pids[0]!;
  process.kill(victim, 'SIGSTOP');
  t.after(() => {
    try {
      process.kill(victim, 'SIGKILL');
    } catch {}
  });
  // 1 s heartbeat × 3 missed, plus the restart.
  const after = await poll(async () => {
    const a = await d.app('alpha');
    return a && a.pids.length === 1 && a.pids[0] !== victim ? a : undefined;
  }, 12_000, 'a replacement for the hung worker');
  assert.equal(after.lastError?.code, 'ERR_LISTENER_HUNG');
  await d.waitLog((l) => l.msg === 'listener is hung (missed heartbeats); killing it', 1000);
  assert.equal((await exchange(port!, 'hi')).reply, 'one:hi');
});
