// The daemon follows its config file: real daemon process, real listeners, real loopback sockets.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { once } from 'node:events';
import { rm } from 'node:fs/promises';
import net from 'node:net';
import { exchange, startEcho } from '../proxy/testing.ts';
import type { EchoTarget } from '../proxy/testing.ts';
import { appConfig, waitFor, startTestDaemon } from './testing.ts';
import type { TestDaemon } from './testing.ts';

async function echoes(t: { after: (fn: () => Promise<void>) => void }, ...tags: string[]): Promise<EchoTarget[]> {
  const list = await Promise.all(tags.map((tag) => startEcho(tag)));
  t.after(async () => void (await Promise.all(list.map((e) => e.close()))));
  return list;
}

/** Resolves once a fresh connection to `port` is answered by the echo tagged `tag`. */
function answeredBy(port: number, tag: string, ms = 20_000): Promise<unknown> {
  return waitFor(async () => (await exchange(port, 'hello', '127.0.0.1', 5000)).reply === `${tag}:hello`, ms, `port ${port} answered by ${tag}`);
}

async function settled(d: TestDaemon, name: string, generation: number): Promise<void> {
  await d.running(name, generation);
}

test('an edit rolls out the changed app, starts the new one, stops the removed one, and leaves the others alone', async (t) => {
  const [one, two, three] = await echoes(t, 'one', 'two', 'three');
  const d = await startTestDaemon(t, {
    Apps: [appConfig('alpha', [0], [one!.port], { Workers: 2 }), appConfig('beta', [0], [two!.port]), appConfig('gamma', [0], [three!.port])],
  });
  await settled(d, 'alpha', 1);
  await settled(d, 'beta', 1);
  const [[pa], [pb], [pc]] = await Promise.all([d.ports('alpha'), d.ports('beta'), d.ports('gamma')]);
  assert.equal(new Set([pa, pb, pc]).size, 3, 'three kernel-picked ports');
  await answeredBy(pa!, 'one');
  const alphaBefore = (await d.app('alpha'))!;
  assert.equal(alphaBefore.pids.length, 2, 'two workers');
  const betaBefore = (await d.app('beta'))!;

  await d.writeConfig({
    Apps: [appConfig('alpha', [0], [one!.port], { Workers: 2 }), appConfig('beta', [0], [three!.port]), appConfig('delta', [0], [two!.port])],
  });
  await answeredBy(pb!, 'three');
  const [pd] = await d.ports('delta');
  await answeredBy(pd!, 'two');
  await waitFor(async () => (await exchange(pc!, 'x', '127.0.0.1', 5000)).error !== undefined, 20_000, 'gamma port closed');
  await waitFor(async () => (await d.apps()).every((a) => a.name !== 'gamma'), 20_000, 'gamma gone from /apps');

  const alphaAfter = (await d.app('alpha'))!;
  assert.deepEqual(alphaAfter.pids, alphaBefore.pids, 'unchanged app keeps its pids');
  assert.equal(alphaAfter.generation, 1);
  const betaAfter = (await d.app('beta'))!;
  assert.equal(betaAfter.generation, 2);
  assert.equal(betaAfter.rollouts, 1);
  assert.deepEqual(betaAfter.targets, [`127.0.0.1:${three!.port}`]);
  assert.deepEqual(betaAfter.ports, [pb], 'the rolled-out generation kept the kernel-picked port');
  assert.notDeepEqual(betaAfter.pids, betaBefore.pids, 'changed app has new pids');
  await waitFor(() => betaBefore.pids.every((pid) => !alive(pid)), 20_000, 'the old beta generation exited');
  await answeredBy(pa!, 'one');
});

test('an invalid edit changes nothing and is reported in /status until a valid edit', async (t) => {
  const [one, two] = await echoes(t, 'one', 'two');
  const d = await startTestDaemon(t, { Apps: [appConfig('alpha', [0], [one!.port])] });
  await settled(d, 'alpha', 1);
  const [pa] = await d.ports('alpha');
  const before = (await d.app('alpha'))!;

  // Two problems at once: both must be listed.
  await d.writeConfig({ Apps: [{ Name: 'alpha', Ports: [70000], Targets: ['nope'] }] });
  const status = await waitFor(async () => {
    const s = await d.status();
    return s.config.error ? s : undefined;
  }, 20_000, 'config error in /status');
  const paths = status.config.error!.issues.map((i) => i.path).join(' ');
  assert.match(paths, /Ports/);
  assert.match(paths, /Targets/);
  const errorLine = await d.waitLog((l) => l.event === 'config-rejected', 20_000, 'the config error log');
  assert.equal(d.logs.filter((l) => l.event === 'config-rejected').length, 1, 'logged once');
  assert.match(JSON.stringify(errorLine.issues), /Ports/);
  const after = (await d.app('alpha'))!;
  assert.deepEqual(after.pids, before.pids);
  assert.equal(after.generation, 1);
  await answeredBy(pa!, 'one');

  // Not JSON at all is also a reported error, not a crash.
  await d.writeConfig('{"Apps": [', 'in-place');
  await waitFor(async () => (await d.status()).config.error?.message !== status.config.error!.message, 20_000, 'the JSON syntax error');
  assert.deepEqual((await d.app('alpha'))!.pids, before.pids);

  await d.writeConfig({ Apps: [appConfig('alpha', [0], [one!.port]), appConfig('beta', [0], [two!.port])] });
  const [pb] = await d.ports('beta');
  await answeredBy(pb!, 'two');
  assert.equal((await d.status()).config.error, null, 'a valid edit clears the error');
  assert.deepEqual((await d.app('alpha'))!.pids, before.pids);
});

test('in-place writes, atomic saves and mv from another directory are all seen', async (t) => {
  const [one, two, three] = await echoes(t, 'one', 'two', 'three');
  const d = await startTestDaemon(t, { Apps: [appConfig('alpha', [0], [one!.port])] });
  const [pa] = await d.ports('alpha');
  await answeredBy(pa!, 'one');
  // Every later generation binds the port the kernel picked for the first one.
  await d.writeConfig({ Apps: [appConfig('alpha', [0], [two!.port])] }, 'atomic');
  await answeredBy(pa!, 'two');
  await d.writeConfig({ Apps: [appConfig('alpha', [0], [three!.port])] }, 'mv');
  await answeredBy(pa!, 'three');
  await d.writeConfig({ Apps: [appConfig('alpha', [0], [one!.port])] }, 'in-place');
  await answeredBy(pa!, 'one');
  assert.equal((await d.app('alpha'))!.generation, 4);

  // Briefly missing (deleted, then written anew): nothing changes until it is back.
  const pids = (await d.app('alpha'))!.pids;
  await rm(d.configPath);
  await d.waitLog((l) => l.event === 'config-missing', 20_000, 'the missing-config warning');
  assert.deepEqual((await d.app('alpha'))!.pids, pids);
  await answeredBy(pa!, 'one');
  await d.writeConfig({ Apps: [appConfig('alpha', [0], [two!.port])] }, 'in-place');
  await answeredBy(pa!, 'two');
  assert.equal((await d.app('alpha'))!.generation, 5);
  assert.deepEqual((await d.app('alpha'))!.ports, [pa]);
});

test('a burst of edits converges on the last one without a generation per edit', async (t) => {
  const targets = await echoes(t, 't0', 't1', 't2', 't3', 't4', 't5', 't6', 't7', 't8', 't9');
  const d = await startTestDaemon(t, { Apps: [appConfig('alpha', [0], [targets[0]!.port])] });
  await settled(d, 'alpha', 1);
  const [pa] = await d.ports('alpha');
  for (let i = 1; i < targets.length; i++) await d.writeConfig({ Apps: [appConfig('alpha', [0], [targets[i]!.port])] }, 'in-place');
  await answeredBy(pa!, 't9', 30_000);
  const a = (await d.app('alpha'))!;
  assert.deepEqual(a.targets, [`127.0.0.1:${targets[9]!.port}`]);
  assert.ok(a.generation < targets.length, `generation ${a.generation} < ${targets.length}: edits coalesced`);
});

test('a rollout that cannot bind a new port fails, keeps the old generation serving, and says why', async (t) => {
  const [one, two] = await echoes(t, 'one', 'two');
  // Another program on the new port, without SO_REUSEPORT (it holds the port from here on).
  const squatter = net.createServer().listen({ port: 0, host: '::', ipv6Only: false });
  await once(squatter, 'listening');
  const taken = (squatter.address() as net.AddressInfo).port;
  t.after(() => new Promise<void>((r) => squatter.close(() => r())));

  const d = await startTestDaemon(t, { Apps: [appConfig('alpha', [0], [one!.port])] });
  await settled(d, 'alpha', 1);
  const [pa] = await d.ports('alpha');
  const before = (await d.app('alpha'))!;
  await d.writeConfig({ Apps: [appConfig('alpha', [0, taken], [two!.port])] });
  const failed = await waitFor(async () => {
    const a = await d.app('alpha');
    return a?.lastError ? a : undefined;
  }, 20_000, 'lastError on alpha');
  assert.equal(failed.lastError!.code, 'ERR_BIND');
  assert.match(failed.lastError!.message, new RegExp(String(taken)));
  assert.equal(failed.state, 'running');
  assert.equal(failed.currentError?.code, 'ERR_BIND', 'running, but not what the config asks');
  assert.equal(failed.generation, 1);
  assert.deepEqual(failed.pids, before.pids, 'the old generation keeps serving');
  assert.deepEqual(failed.targets, [`127.0.0.1:${one!.port}`]);
  await answeredBy(pa!, 'one');
  await d.waitLog((l) => l.event === 'rollout-failed', 20_000, 'the rollout failure log');

  // Once the port is free, re-saving the same content (or SIGHUP) retries the rollout.
  await new Promise<void>((r) => squatter.close(() => r()));
  d.child.kill('SIGHUP');
  await answeredBy(taken, 'two', 30_000);
  await answeredBy(pa!, 'two');
  const after = (await d.app('alpha'))!;
  assert.equal(after.currentError, null, 'the rollout went through');
  assert.equal(after.lastError?.code, 'ERR_BIND', 'the failure stays as history');
  assert.deepEqual(after.ports, [pa, taken]);
});

function alive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch {
    return false;
  }
}
