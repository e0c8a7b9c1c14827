// Active health checks in the real daemon (daemon/main.ts as a child, real listeners): probes are
// the daemon's, once per target per interval whatever Workers is, and GET /apps shows the states.
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { startCountingTcp, startDns, startPatroniPair } from './health/testing-health.ts';
import { appConfig, waitFor as poll, startTestDaemon } from './testing.ts';

test('with Workers: 2 and 3 targets, each target receives one probe per interval (counted at the targets)', async (t) => {
  const intervalMs = 300;
  const targets = [await startCountingTcp(t), await startCountingTcp(t), await startCountingTcp(t)];
  const d = await startTestDaemon(t, { Apps: [appConfig('counted', [0], targets.map((x) => x.port), { Workers: 2, HealthCheck: { IntervalMs: intervalMs, Rise: 1 } })] });
  const app = await poll(async () => { const a = await d.app('counted'); return a?.state === 'running' && a.pids.length === 2 && a.health.every((h) => h.state === 'up') ? a : undefined; }, 20_000, 'two workers serving, every target up');
  assert.equal(app.workers, 2);

  // Count over a window of whole intervals. Timers fire late, never early, and each delay is at
  // least 0.9 × IntervalMs (jitter): at most floor(window / 0.9 interval) + 1 probes start in the
  // window, + 1 for one whose connect was late on a busy machine. A probe per worker would be twice.
  const before = targets.map((x) => x.accepted);
  const start = Date.now();
  await poll(() => Date.now() - start >= 6 * intervalMs, 10_000, 'six intervals', 20);
  const windowMs = Date.now() - start;
  const counts = targets.map((x, i) => x.accepted - before[i]!);
  const most = Math.floor(windowMs / (0.9 * intervalMs)) + 2;
  t.diagnostic(`probes per target in ${windowMs} ms (${(windowMs / intervalMs).toFixed(1)} intervals): ${counts.join(', ')}; at most ${most} allowed`);
  for (const [i, n] of counts.entries()) {
    assert.ok(n <= most, `target ${i} got ${n} probes in ${windowMs} ms: more than one per interval`);
    assert.ok(n >= 2, `target ${i} got ${n} probes in ${windowMs} ms: probing stalled`);
  }
});

test('Patroni: GET /apps shows the primary up and the replica down, and follows a swap', async (t) => {
  const intervalMs = 200;
  const fall = 2;
  const pair = await startPatroniPair(t);
  const [primary, replica] = pair.targets;
  const d = await startTestDaemon(t, {
    Apps: [appConfig('pg', [0], [...pair.targets], {
      Workers: 2,
      HealthCheck: { IntervalMs: intervalMs, Rise: 1, Fall: fall, Port: pair.healthPort, HttpPath: '/primary', ExpectStatus: [200] },
    })],
  });
  const states = async (): Promise<Record<string, string>> => Object.fromEntries(((await d.app('pg'))?.health ?? []).map((h) => [h.target, h.state]));
  await poll(async () => { const s = await states(); return s[primary] === 'up' && s[replica] === 'down'; }, 20_000, 'primary up, replica down');
  const app = await d.app('pg');
  assert.equal(app?.panic, false);
  const down = app?.health.find((h) => h.target === replica);
  assert.equal(down?.lastError, 'HTTP 503 from /primary (expected 200)');
  assert.ok(!Number.isNaN(Date.parse(down?.since ?? '')), 'since is an ISO time');

  // The change is logged once, with structured fields.
  const line = await d.waitLog((l) => l.event === 'target-state' && l.target === replica, 5000, 'target-state log line');
  assert.deepEqual([line.app, line.state, line.level], ['pg', 'down', 30]);

  const swappedAt = Date.now();
  pair.health[0].status = 503;
  pair.health[1].status = 200;
  await poll(async () => { const s = await states(); return s[primary] === 'down' && s[replica] === 'up'; }, 10_000, '/apps follows the swap');
  t.diagnostic(`/apps followed the swap in ${Date.now() - swappedAt} ms (Fall × IntervalMs + one interval = ${fall * intervalMs + intervalMs} ms)`);
  assert.equal(d.logs.filter((l) => l.event === 'target-state' && l.target === replica && l.state === 'down').length, 1, 'one line per change, not one per worker');
});

test('names are probed as the listeners resolve them (FPROXY_DNS_SERVERS): one that does not resolve is down', async (t) => {
  const target = await startCountingTcp(t);
  const dns = await startDns(t, { 'db.test': '127.0.0.1' });
  const d = await startTestDaemon(t, { Apps: [appConfig('named', [0], [`db.test:${target.port}`, 'gone.test:5432'], { HealthCheck: { IntervalMs: 200, Rise: 1, Fall: 1 } })] }, { env: { FPROXY_DNS_SERVERS: dns } });
  const app = await poll(async () => {
    const a = await d.app('named');
    const s = Object.fromEntries((a?.health ?? []).map((h) => [h.target, h.state]));
    return s[`db.test:${target.port}`] === 'up' && s['gone.test:5432'] === 'down' ? a : undefined;
  }, 20_000, 'db.test up, gone.test down');
  assert.match(app.health.find((h) => h.target === 'gone.test:5432')?.lastError ?? '', /^cannot resolve "gone\.test": .*ENOTFOUND/);
  assert.ok(target.accepted >= 1);
});
