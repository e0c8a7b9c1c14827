// What the daemon tells its listeners about health: the real daemon (in this process) with
// recording listeners (recording-listener.ts), and the Patroni case on 127.0.0.2 / 127.0.0.3.
// Asserted on structured signals only: the IPC messages the listeners received and GET /apps.
import assert from 'node:assert/strict';
import { writeFile } from 'node:fs/promises';
import { test } from 'node:test';
import type { AppStatus } from '../app-supervisor.ts';
import { startPatroniPair, startRecordingDaemon, until } from './testing-health.ts';
import type { PatroniPair, RecordedMessage, RecordingDaemon } from './testing-health.ts';

const INTERVAL_MS = 200;
const FALL = 2;

function patroniApp(pair: PatroniPair, extra: Record<string, unknown> = {}): Record<string, unknown> {
  return {
    Name: 'pg',
    Ports: [23999],
    Targets: [...pair.targets],
    Workers: 2,
    DrainTimeoutMs: 100,
    HealthCheck: { IntervalMs: INTERVAL_MS, TimeoutMs: INTERVAL_MS, Rise: 1, Fall: FALL, Port: pair.healthPort, HttpPath: '/primary', ExpectStatus: [200] },
    ...extra,
  };
}

function healthOf(app: AppStatus | undefined): Record<string, string> {
  return Object.fromEntries((app?.health ?? []).map((h) => [h.target, h.state]));
}

function appStatus(d: RecordingDaemon): AppStatus | undefined {
  return d.daemon.apps().find((a) => a.name === 'pg' && a.state !== 'draining');
}

/** Per listener pid: its generation and the latest health map it was sent (start.health or a `health` message). */
function listenerViews(records: RecordedMessage[]): Map<number, { generation: number; states: Record<string, string> }> {
  const views = new Map<number, { generation: number; states: Record<string, string> }>();
  for (const { pid, msg } of records) {
    if (msg.type === 'start') views.set(pid, { generation: msg.generation ?? 0, states: msg.health ?? {} });
    else if (msg.type === 'health') {
      const v = views.get(pid);
      if (v !== undefined) v.states = msg.states ?? {};
    }
  }
  return views;
}

test('Patroni: /apps and every worker follow the primary, and follow a swap within Fall × IntervalMs + one interval', async (t) => {
  const pair = await startPatroniPair(t);
  const [primary, replica] = pair.targets;
  const d = await startRecordingDaemon(t, { Apps: [patroniApp(pair)] });

  await until(() => { const h = healthOf(appStatus(d)); return h[primary] === 'up' && h[replica] === 'down'; }, 10_000, '/apps: primary up, replica down');
  // Every worker (2) of the serving generation was told, by `start` or a `health` message.
  const want = { [primary]: 'up', [replica]: 'down' };
  await until(() => { const v = [...listenerViews(d.records()).values()]; return v.length === 2 && v.every((x) => JSON.stringify(x.states) === JSON.stringify(want)); }, 5000, 'both workers told primary up, replica down');
  const logged = d.lines.filter((l) => l.event === 'target-state');
  assert.deepEqual(logged.map((l) => [l.app, l.target, l.state]).sort(), [['pg', primary, 'up'], ['pg', replica, 'down']].sort(), 'each change logged once');

  // Swap roles.
  const swappedAt = Date.now();
  pair.health[0].status = 503;
  pair.health[1].status = 200;
  await until(() => { const h = healthOf(appStatus(d)); return h[primary] === 'down' && h[replica] === 'up'; }, 10_000, '/apps follows the swap');
  const followedMs = Date.now() - swappedAt;
  const swapped = { [primary]: 'down', [replica]: 'up' };
  await until(() => [...listenerViews(d.records()).values()].every((x) => JSON.stringify(x.states) === JSON.stringify(swapped)), 5000, 'both workers told of the swap');
  t.diagnostic(`/apps followed the swap in ${followedMs} ms (Fall × IntervalMs + one interval = ${FALL * INTERVAL_MS + INTERVAL_MS} ms)`);
  const app = appStatus(d);
  assert.equal(app?.panic, false, 'listeners without a target pool report no panic');
  assert.deepEqual(app?.health.map((h) => h.activeConnections), [0, 0]);
  assert.match(app?.health.find((h) => h.target === primary)?.lastError ?? '', /^HTTP 503 from \/primary \(expected 200\)$/);
  assert.equal(pair.data[0].accepted + pair.data[1].accepted, 0, 'the HTTP check probes the health port, never the data port');
});

test('health survives a rollout: the new generation starts with the known states, /apps never shows unknown, draining workers hear changes', async (t) => {
  const pair = await startPatroniPair(t);
  const [primary, replica] = pair.targets;
  // The old generation lingers draining (recording listeners drain for DrainTimeoutMs).
  const d = await startRecordingDaemon(t, { Apps: [patroniApp(pair, { DrainTimeoutMs: 5000 })] });
  await until(() => { const h = healthOf(appStatus(d)); return h[primary] === 'up' && h[replica] === 'down'; }, 10_000, 'primary up, replica down');

  // Watch /apps through the rollout: no target may flap back to unknown.
  const seen = new Set<string>();
  let watching = true;
  const watcher = (async () => {
    while (watching) {
      for (const h of appStatus(d)?.health ?? []) seen.add(h.state);
      await new Promise((r) => setTimeout(r, 5));
    }
  })();
  await writeFile(d.configPath, JSON.stringify({ Apps: [patroniApp(pair, { DrainTimeoutMs: 100 })] }));
  await d.daemon.reload('test edit');
  await until(() => appStatus(d)?.generation === 2 && appStatus(d)?.state === 'running', 10_000, 'generation 2 serving');
  watching = false;
  await watcher;
  assert.deepEqual([...seen].sort(), ['down', 'up'], 'only up and down were ever shown');

  const views = listenerViews(d.records());
  const gen2 = [...views.values()].filter((v) => v.generation === 2);
  assert.equal(gen2.length, 2, 'two workers in generation 2');
  const starts = d.records().filter((r) => r.msg.type === 'start' && r.msg.generation === 2);
  for (const s of starts) assert.deepEqual(s.msg.health, { [primary]: 'up', [replica]: 'down' }, 'start carries the known states');

  // A change while generation 1 still drains reaches every live process of the app: 4 of them.
  pair.health[0].status = 503;
  await until(() => { const v = listenerViews(d.records()); return [...v.values()].filter((x) => x.states[primary] === 'down').length === 4; }, 10_000, 'all four processes (gen 1 draining, gen 2 serving) told primary is down');
  const gen1 = [...views].filter(([, v]) => v.generation === 1).map(([pid]) => pid);
  for (const pid of gen1) {
    const types = d.records().filter((r) => r.pid === pid).map((r) => (r.msg.type === 'health' ? `health:${r.msg.states?.[primary]}` : r.msg.type));
    assert.ok(types.indexOf('health:down') > types.indexOf('drain'), `gen 1 worker ${pid} heard the change while draining: ${types.join(' ')}`);
  }
});

test('a worker restarted after a crash starts with the known states', async (t) => {
  const pair = await startPatroniPair(t);
  const [primary, replica] = pair.targets;
  const d = await startRecordingDaemon(t, { Apps: [patroniApp(pair)] });
  await until(() => { const h = healthOf(appStatus(d)); return h[primary] === 'up' && h[replica] === 'down'; }, 10_000, 'primary up, replica down');
  const victim = appStatus(d)?.pids[0];
  assert.ok(victim !== undefined);
  process.kill(victim, 'SIGKILL');
  const victimStart = d.records().find((r) => r.pid === victim && r.msg.type === 'start');
  // Two workers started, then the restarted one: the third `start` the daemon sent.
  const third = await until(() => d.records().filter((r) => r.msg.type === 'start')[2], 10_000, 'the restarted worker\'s start');
  assert.notEqual(third.pid, victim);
  assert.deepEqual([third.msg.generation, third.msg.worker], [1, victimStart?.msg.worker], 'the same worker slot of the same generation');
  assert.deepEqual(third.msg.health, { [primary]: 'up', [replica]: 'down' });
});

test('GET /apps merges the workers\' target reports: ejected, connections summed, panic (pong and `targets` message)', async (t) => {
  const pair = await startPatroniPair(t);
  const [primary, replica] = pair.targets;
  // No HealthCheck: without reports every target would be 'up'.
  const app = { ...patroniApp(pair), HealthCheck: undefined };
  const d = await startRecordingDaemon(t, { Apps: [JSON.parse(JSON.stringify(app))] }, { FPROXY_RECORD_EJECT: '1' });
  // Each worker reports in its own pong: wait until both are in (panic comes with the first one).
  const status = await until(() => { const a = appStatus(d); return a?.state === 'running' && a.panic && a.health[0]?.activeConnections === 4 ? a : undefined; }, 10_000, 'panic and both workers\' reports');
  assert.deepEqual(status.health.map((h) => [h.target, h.state, h.activeConnections, h.lastError]), [
    [primary, 'ejected', 4, 'ECONNREFUSED (recorded)'],
    [replica, 'up', 0, null],
  ]);
});

test('a change to HealthCheck alone retunes the checks without a rollout: same generation, same listener processes, new verdicts', async (t) => {
  const pair = await startPatroniPair(t);
  const [primary, replica] = pair.targets;
  const d = await startRecordingDaemon(t, { Apps: [patroniApp(pair)] });
  await until(() => { const h = healthOf(appStatus(d)); return h[primary] === 'up' && h[replica] === 'down'; }, 10_000, 'primary up, replica down');
  const before = appStatus(d)!;

  // The replica answers 503 on /primary: expecting 503 turns the verdicts around.
  const check = { IntervalMs: INTERVAL_MS, TimeoutMs: INTERVAL_MS, Rise: 1, Fall: FALL, Port: pair.healthPort, HttpPath: '/primary', ExpectStatus: [503] };
  await writeFile(d.configPath, JSON.stringify({ Apps: [patroniApp(pair, { HealthCheck: check })] }));
  await d.daemon.reload('test edit');
  await until(() => { const h = healthOf(appStatus(d)); return h[primary] === 'down' && h[replica] === 'up'; }, 10_000, 'primary down, replica up under the new check');
  const after = appStatus(d)!;
  assert.equal(after.generation, before.generation, 'no new generation');
  assert.deepEqual(after.pids, before.pids, 'the same listener processes');
  assert.equal(after.rollouts, before.rollouts);
  assert.equal(d.records().filter((r) => r.msg.type === 'start').length, before.pids.length, 'no listener started since');

  // Anything else with it is a rollout as before.
  await writeFile(d.configPath, JSON.stringify({ Apps: [patroniApp(pair, { HealthCheck: check, DrainTimeoutMs: 200 })] }));
  await d.daemon.reload('test edit');
  await until(() => appStatus(d)?.generation === before.generation + 1 && appStatus(d)?.state === 'running', 10_000, 'the next generation serving');
});
