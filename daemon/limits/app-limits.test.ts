// Limits hold for the app, not per process (issue 12 §2): a real daemon, Workers: 2, clients bound
// to two loopback sources, and a rollout in the middle. The numbers must stay within 10 % of the
// configured ones.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { startEcho } from '../../proxy/testing.ts';
import { connectFrom, type Held } from '../../proxy/protect/protect-testing.ts';
import { setTimeout as observe } from 'node:timers/promises';
import { appConfig, waitFor as poll, startTestDaemon } from '../testing.ts';
import type { TestDaemon } from '../testing.ts';

const SOURCES = ['127.0.0.2', '127.0.0.3'];

async function running(d: TestDaemon, generation: number): Promise<void> {
  await poll(async () => {
    const a = await d.app('lim');
    return a?.state === 'running' && a.generation === generation && a.pids.length === 2;
  }, 20_000, `generation ${generation} running on 2 workers`);
}

/** Open `n` connections from `from` one after another; keep the served ones open. */
async function openMany(port: number, from: string, n: number, held: Held[]): Promise<number> {
  let served = 0;
  for (let i = 0; i < n; i++) {
    const c = await connectFrom(port, from);
    if (c.verdict === 'served') {
      served++;
      held.push(c.held);
    }
  }
  return served;
}

test('PerSource MaxConnections holds across 2 workers and across a rollout (draining generation included)', async (t) => {
  const target = await startEcho();
  t.after(() => target.close());
  const app = (idle: number) => appConfig('lim', [0], [target.port], { Workers: 2, DrainTimeoutMs: 60_000, IdleTimeoutMs: idle, PerSource: { MaxConnections: 10 } });
  const d = await startTestDaemon(t, { Apps: [app(600_000)] });
  await running(d, 1);
  const [port] = await d.ports('lim');
  const held: Held[] = [];
  t.after(() => Promise.all(held.map((h) => h.close())));

  for (const from of SOURCES) {
    const served = await openMany(port!, from, 20, held);
    t.diagnostic(`${from}: ${served} of 20 served (limit 10)`);
    assert.ok(served >= 9 && served <= 11, `${from}: ${served} of 20 served with PerSource.MaxConnections 10`);
  }
  const before = held.length;

  // Roll out; the old generation keeps its connections while draining.
  await d.writeConfig({ Apps: [app(500_000)] });
  await running(d, 2);
  for (const from of SOURCES) {
    const served = await openMany(port!, from, 10, held);
    t.diagnostic(`after rollout, ${from}: ${served} more of 10 served`);
    assert.ok(served <= 1, `${from}: ${served} more served by the new generation while the source is at its limit`);
  }
  // Free 5 of 127.0.0.2's connections (held by the draining generation): the new one may use them.
  const fromFirst = held.filter((h) => h.socket.localAddress === '127.0.0.2').slice(0, 5);
  await Promise.all(fromFirst.map((h) => h.close()));
  let more = 0;
  await poll(async () => {
    more += await openMany(port!, '127.0.0.2', 1, held);
    return more >= 5;
  }, 10_000, 'slots freed in the old generation to reach the new one');
  const extra = await openMany(port!, '127.0.0.2', 5, held);
  t.diagnostic(`after freeing 5 of 127.0.0.2: ${more + extra} served`);
  assert.ok(more + extra <= 6, `after freeing 5: ${more + extra} served`);
  assert.ok(before >= 18);
});

test('PerSource RatePerSecond holds across 2 workers and a rollout: burst + rate × seconds, within 10 %', async (t) => {
  const target = await startEcho();
  t.after(() => target.close());
  const rate = 20;
  const burst = 20;
  const app = (idle: number) => appConfig('lim', [0], [target.port], { Workers: 2, DrainTimeoutMs: 5000, IdleTimeoutMs: idle, PerSource: { RatePerSecond: rate, Burst: burst } });
  const d = await startTestDaemon(t, { Apps: [app(600_000)] });
  await running(d, 1);
  const [port] = await d.ports('lim');

  const counts = new Map<string, { served: number; refused: number; first: number; last: number }>();
  let rolled = false;
  const runFor = 4000;
  const t0 = Date.now();
  // Each source opens connections one after another (closing each) for runFor ms; the rollout lands in the middle.
  const clients = SOURCES.map(async (from) => {
    const c = { served: 0, refused: 0, first: Date.now(), last: 0 };
    counts.set(from, c);
    for (let i = 0; i < 5000 && Date.now() - t0 < runFor; i++) {
      const r = await connectFrom(port!, from);
      c.last = Date.now();
      if (r.verdict === 'served') c.served++;
      else c.refused++;
      await r.held.close();
    }
  });
  const rollout = (async () => {
    await poll(() => Date.now() - t0 >= runFor / 4, runFor, 'a quarter of the run');
    await d.writeConfig({ Apps: [app(500_000)] });
    await running(d, 2);
    rolled = Date.now() - t0 < runFor;
  })();
  await Promise.all([...clients, rollout]);
  assert.ok(rolled, 'the rollout completed during the run');
  for (const [from, c] of counts) {
    const seconds = (c.last - c.first) / 1000;
    const allowed = burst + rate * seconds;
    t.diagnostic(`${from}: ${c.served} served, ${c.refused} rate-limited in ${seconds.toFixed(2)} s; allowed ${allowed.toFixed(1)}`);
    assert.ok(c.refused > 0, `${from}: some connections were rate-limited`);
    assert.ok(c.served <= allowed * 1.1 && c.served >= allowed * 0.9, `${from}: ${c.served} served in ${seconds.toFixed(2)} s, allowed ${allowed.toFixed(1)} (±10 %)`);
  }
});

test('app MaxConnections holds across 2 workers: the N+1-th is refused, a close lets the next one in', async (t) => {
  const target = await startEcho();
  t.after(() => target.close());
  const d = await startTestDaemon(t, { Apps: [appConfig('lim', [0], [target.port], { Workers: 2, MaxConnections: 12 })] });
  await running(d, 1);
  const [port] = await d.ports('lim');
  const held: Held[] = [];
  t.after(() => Promise.all(held.map((h) => h.close())));
  let served = 0;
  for (const from of SOURCES) served += await openMany(port!, from, 10, held);
  t.diagnostic(`${served} of 20 served with MaxConnections 12`);
  assert.equal(served, 12);
  assert.equal(target.connections, 12);
  await held.shift()!.close();
  const next = await poll(async () => (await openMany(port!, '127.0.0.4', 1, held)) === 1, 10_000, 'a freed slot to be usable');
  assert.ok(next);
});

test('QueueTimeoutMs across 2 workers: a connection over MaxConnections waits, then is served when any worker frees a slot', async (t) => {
  const target = await startEcho();
  t.after(() => target.close());
  const d = await startTestDaemon(t, { Apps: [appConfig('lim', [0], [target.port], { Workers: 2, MaxConnections: 4, QueueTimeoutMs: 30_000 })] });
  await running(d, 1);
  const [port] = await d.ports('lim');
  const held: Held[] = [];
  t.after(() => Promise.all(held.map((h) => h.close())));
  assert.equal(await openMany(port!, '127.0.0.2', 4, held), 4);
  const queued = connectFrom(port!, '127.0.0.3', 'queued', 30_000);
  // An observation window for something that must not happen (the fifth reaching the target).
  await observe(500);
  assert.equal(target.connections, 4, 'the fifth is held, not connected');
  await held.shift()!.close();
  const q = await queued;
  held.push(q.held);
  assert.equal(q.verdict, 'served');
  assert.equal(target.connections, 5);
});
