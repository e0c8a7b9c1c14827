// The daemon follows its config file: real daemon process, real listeners, real loopback sockets.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { once } from 'node:events';
import { rm } from 'node:fs/promises';
import net from 'node:net';
import { exchange, startEcho } from '../proxy/testing.ts';
import type { EchoTarget } from '../proxy/testing.ts';
import { appConfig, freePorts, poll, startTestDaemon } from './testing.ts';
import type { TestDaemon } from './testing.ts';

async function echoes(t: { after: (fn: () => Promise<void>) => void }, ...tags: string[]): Promise<EchoTarget[]> {
  const list = await Promise.all(tags.map((tag) => startEcho(tag)));
  t.after(async () => void (await Promise.all(list.map((e) => e.close()))));
  return list;
}

/** Resolves once a fresh connection to `port` is answered by the echo tagged `tag`. */
function answeredBy(port: number, tag: string, ms = 5000): Promise<unknown> {
  return poll(async () => (await exchange(port, 'hello', '127.0.0.1', 1000)).reply === `${tag}:hello`, ms, `port ${port} answered by ${tag}`);
}

async function settled(d: TestDaemon, name: string, generation: number): Promise<void> {
  await poll(async () => {
    const a = await d.app(name);
    return a?.state === 'running' && a.generation === generation && a.pids.length === a.workers;
  }, 10_000, `app ${name} running generation ${generation}`);
}

test('an edit rolls out the changed app, starts the new one, stops the removed one, and leaves the others alone', async (t) => {
  const [one, two, three] = await echoes(t, 'one', 'two', 'three');
  const [pa, pb, pc, pd] = await freePorts(4);
  const d = await startTestDaemon(t, {
    Apps: [appConfig('alpha', [pa!], [one!.port], { Workers: 2 }), appConfig('beta', [pb!], [two!.port]), appConfig('gamma', [pc!], [three!.port])],
  });
  await settled(d, 'alpha', 1);
  await settled(d, 'beta', 1);
  await answeredBy(pa!, 'one');
  const alphaBefore = (await d.app('alpha'))!;
  assert.equal(alphaBefore.pids.length, 2, 'two workers');
  const betaBefore = (await d.app('beta'))!;

  await d.writeConfig({
    Apps: [appConfig('alpha', [pa!], [one!.port], { Workers: 2 }), appConfig('beta', [pb!], [three!.port]), appConfig('delta', [pd!], [two!.port])],
  });
  await answeredBy(pb!, 'three');
  await answeredBy(pd!, 'two');
  await poll(async () => (await exchange(pc!, 'x', '127.0.0.1', 500)).error !== undefined, 5000, 'gamma port closed');
  await poll(async () => (await d.apps()).every((a) => a.name !== 'gamma'), 10_000, 'gamma gone from /apps');

  const alphaAfter = (await d.app('alpha'))!;
  assert.deepEqual(alphaAfter.pids, alphaBefore.pids, 'unchanged app keeps its pids');
  assert.equal(alphaAfter.generation, 1);
  const betaAfter = (await d.app('beta'))!;
  assert.equal(betaAfter.generation, 2);
  assert.equal(betaAfter.rollouts, 1);
  assert.deepEqual(betaAfter.targets, [`127.0.0.1:${three!.port}`]);
  assert.notDeepEqual(betaAfter.pids, betaBefore.pids, 'changed app has new pids');
  await poll(() => betaBefore.pids.every((pid) => !alive(pid)), 5000, 'the old beta generation exited');
  await answeredBy(pa!, 'one');
});

test('an invalid edit changes nothing and is reported in /status until a valid edit', async (t) => {
  const [one, two] = await echoes(t, 'one', 'two');
  const [pa, pb] = await freePorts(2);
  const d = await startTestDaemon(t, { Apps: [appConfig('alpha', [pa!], [one!.port])] });
  await settled(d, 'alpha', 1);
  const before = (await d.app('alpha'))!;

  // Two problems at once: both must be listed.
  await d.writeConfig({ Apps: [{ Name: 'alpha', Ports: [70000], Targets: ['nope'] }] });
  const status = await poll(async () => {
    const s = await d.status();
    return s.config.error ? s : undefined;
  }, 5000, 'config error in /status');
  const paths = status.config.error!.issues.map((i) => i.path).join(' ');
  assert.match(paths, /Ports/);
  assert.match(paths, /Targets/);
  const errorLine = await d.waitLog((l) => l.msg?.startsWith('config rejected') === true, 2000, 'the config error log');
  assert.equal(d.logs.filter((l) => l.msg?.startsWith('config rejected')).length, 1, 'logged once');
  assert.match(String(errorLine.msg), /Ports/);
  const after = (await d.app('alpha'))!;
  assert.deepEqual(after.pids, before.pids);
  assert.equal(after.generation, 1);
  await answeredBy(pa!, 'one');

  // Not JSON at all is also a reported error, not a crash.
  await d.writeConfig('{"Apps": [', 'in-place');
  await poll(async () => (await d.status()).config.error?.message !== status.config.error!.message, 5000, 'the JSON syntax error');
  assert.deepEqual((await d.app('alpha'))!.pids, before.pids);

  await d.writeConfig({ Apps: [appConfig('alpha', [pa!], [one!.port]), appConfig('beta', [pb!], [two!.port])] });
  await answeredBy(pb!, 'two');
  assert.equal((await d.status()).config.error, null, 'a valid edit clears the error');
  assert.deepEqual((await d.app('alpha'))!.pids, before.pids);
});

test('in-place writes, atomic saves and mv from another directory are all seen', async (t) => {
  const [one, two, three] = await echoes(t, 'one', 'two', 'three');
  const [pa] = await freePorts(1);
  const d = await startTestDaemon(t, { Apps: [appConfig('alpha', [pa!], [one!.port])] });
  await answeredBy(pa!, 'one');
  await d.writeConfig({ Apps: [appConfig('alpha', [pa!], [two!.port])] }, 'atomic');
  await answeredBy(pa!, 'two');
  await d.writeConfig({ Apps: [appConfig('alpha', [pa!], [three!.port])] }, 'mv');
  await answeredBy(pa!, 'three');
  await d.writeConfig({ Apps: [appConfig('alpha', [pa!], [one!.port])] }, 'in-place');
  await answeredBy(pa!, 'one');
  assert.equal((await d.app('alpha'))!.generation, 4);

  // Briefly missing (deleted, then written anew): nothing changes until it is back.
  const pids = (await d.app('alpha'))!.pids;
  await rm(d.configPath);
  await d.waitLog((l) => l.msg === 'config file is missing; keeping the running config', 5000);
  assert.deepEqual((await d.app('alpha'))!.pids, pids);
  await answeredBy(pa!, 'one');
  await d.writeConfig({ Apps: [appConfig('alpha', [pa!], [two!.port])] }, 'in-place');
  await answeredBy(pa!, 'two');
  assert.equal((await d.app('alpha'))!.generation, 5);
});

test('a burst of edits converges on the last one without a generation per edit', async (t) => {
  const targets = await echoes(t, 't0', 't1', 't2', 't3', 't4', 't5', 't6', 't7', 't8', 't9');
  const [pa] = await freePorts(1);
  const d = await startTestDaemon(t, { Apps: [appConfig('alpha', [pa!], [targets[0]!.port])] });
  await settled(d, 'alpha', 1);
  for (let i = 1; i < targets.length; i++) await d.writeConfig({ Apps: [appConfig('alpha', [pa!], [targets[i]!.port])] }, 'in-place');
  await answeredBy(pa!, 't9', 10_000);
  const a = (await d.app('alpha'))!;
  assert.deepEqual(a.targets, [`127.0.0.1:${targets[9]!.port}`]);
  assert.ok(a.generation < targets.length, `generation ${a.generation} < ${targets.length}: edits coalesced`);
});

test('a rollout that cannot bind a new port fails, keeps the old generation serving, and says why', async (t) => {
  const [one, two] = await echoes(t, 'one', 'two');
  const [pa, taken] = await freePorts(2);
  // Another program on the new port, without SO_REUSEPORT.
  const squatter = net.createServer().listen({ port: taken!, host: '::', ipv6Only: false });
  await once(squatter, 'listening');
  t.after(() => new Promise<void>((r) => squatter.close(() => r())));

  const d = await startTestDaemon(t, { Apps: [appConfig('alpha', [pa!], [one!.port])] });
  await settled(d, 'alpha', 1);
  const before = (await d.app('alpha'))!;
  await d.writeConfig({ Apps: [appConfig('alpha', [pa!, taken!], [two!.port])] });
  const failed = await poll(async () => {
    const a = await d.app('alpha');
    return a?.lastError ? a : undefined;
  }, 10_000, 'lastError on alpha');
  assert.equal(failed.lastError!.code, 'ERR_BIND');
  assert.match(failed.lastError!.message, new RegExp(String(taken)));
  assert.equal(failed.state, 'running');
  assert.equal(failed.currentError?.code, 'ERR_BIND', 'running, but not what the config asks');
  assert.equal(failed.generation, 1);
  assert.deepEqual(failed.pids, before.pids, 'the old generation keeps serving');
  assert.deepEqual(failed.targets, [`127.0.0.1:${one!.port}`]);
  await answeredBy(pa!, 'one');
  await d.waitLog((l) => l.msg === 'new generation failed to start; the old generation keeps serving', 2000, 'the rollout failure log');

  // Once the port is free, re-saving the same content (or SIGHUP) retries the rollout.
  await new Promise<void>((r) => squatter.close(() => r()));
  d.child.kill('SIGHUP');
  await answeredBy(taken!, 'two', 10_000);
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
