// HealthChecker in-process against real loopback targets: states, one log line per change, the
// `health` map it publishes, and what a spec change keeps.
import assert from 'node:assert/strict';
import { once } from 'node:events';
import net from 'node:net';
import { describe, test } from 'node:test';
import type { HealthStates } from '../../proxy/index.ts';
import { configuredTargets, HealthChecker } from './health-checker.ts';
import { memoryLogger, specWith, startBlackhole, startCountingTcp, until } from './testing-health.ts';

async function refusedPort(): Promise<number> {
  const s = net.createServer().listen(0, '127.0.0.1');
  await once(s, 'listening');
  const port = (s.address() as net.AddressInfo).port;
  await new Promise<void>((r) => s.close(() => r()));
  return port;
}

function checker(t: { after: (fn: () => void) => void }) {
  const { logger, lines } = memoryLogger();
  const published: HealthStates[] = [];
  const c = new HealthChecker({ app: 'health-app', logger, onChange: (s) => published.push(s) });
  t.after(() => c.stop());
  return { c, lines, published };
}

describe('HealthChecker', () => {
  test('a live target goes up and a refused one down; each change logged once at info and published', async (t) => {
    const live = await startCountingTcp(t);
    const deadPort = await refusedPort();
    const a = `127.0.0.1:${live.port}`;
    const b = `127.0.0.1:${deadPort}`;
    const { c, lines, published } = checker(t);
    c.track([specWith([a, b], { rise: 2, fall: 2 })]);
    assert.deepEqual(published, [{ [a]: 'unknown', [b]: 'unknown' }], 'tracking publishes the initial map');
    await until(() => c.states()[a] === 'up' && c.states()[b] === 'down', 5000, 'a up and b down');
    assert.deepEqual(published.at(-1), { [a]: 'up', [b]: 'down' });
    const changes = lines.filter((l) => l.event === 'target-state');
    assert.deepEqual(changes.map((l) => [l.app, l.target, l.state, l.level]).sort(), [['health-app', a, 'up', 30], ['health-app', b, 'down', 30]].sort());
    assert.equal(changes.find((l) => l.target === b)?.lastError, `ECONNREFUSED ${b}`);
    assert.equal(changes.find((l) => l.target === a)?.lastError, null);
    assert.equal(c.health(b)?.lastError, `ECONNREFUSED ${b}`);
    assert.equal(c.health(b)?.checked, true);
  });

  test('a target whose check times out goes down after Fall', async (t) => {
    const port = await startBlackhole(t);
    const target = `127.0.0.1:${port}`;
    const { c, published } = checker(t);
    c.track([specWith([target], { intervalMs: 150, timeoutMs: 100, fall: 3 })]);
    await until(() => c.states()[target] === 'down', 8000, 'the blackholed target down');
    assert.equal(c.health(target)?.lastError, 'timed out after 100 ms');
    assert.equal(c.health(target)?.failures, 3, 'down on the Fall-th failure');
    assert.deepEqual(published.map((s) => s[target]), ['unknown', 'down'], 'no state in between');
  });

  test('a spec change keeps unchanged targets, starts new ones unknown, drops removed ones', async (t) => {
    const one = await startCountingTcp(t);
    const two = await startCountingTcp(t);
    const a = `127.0.0.1:${one.port}`;
    const b = `127.0.0.1:${two.port}`;
    const { c, lines } = checker(t);
    const check = { intervalMs: 2000, rise: 1, fall: 1 };
    c.track([specWith([a], check)]);
    await until(() => c.states()[a] === 'up', 5000, 'a up');
    const since = c.health(a)?.since;
    // Another setting of the app changes (a rollout); the check and target a do not.
    c.track([specWith([a], check), specWith([a, b], check, { drainTimeoutMs: 1 })]);
    assert.deepEqual(c.states(), { [a]: 'up', [b]: 'unknown' });
    assert.equal(c.health(a)?.since, since, 'a keeps its state and since');
    c.track([specWith([b], check, { drainTimeoutMs: 1 })]);
    assert.deepEqual(c.states(), { [b]: 'unknown' }, 'a removed target is dropped');
    assert.equal(c.health(a), undefined);
    assert.equal(lines.filter((l) => l.event === 'target-state' && l.target === a).length, 1, 'no flap logged for a');
  });

  test('changed check settings start the target over as unknown', async (t) => {
    const one = await startCountingTcp(t);
    const a = `127.0.0.1:${one.port}`;
    const { c } = checker(t);
    c.track([specWith([a], { intervalMs: 2000, rise: 1 })]);
    await until(() => c.states()[a] === 'up', 5000, 'a up');
    c.track([specWith([a], { intervalMs: 2000, rise: 1, port: one.port })]);
    assert.deepEqual(c.states(), { [a]: 'unknown' });
  });

  test('without HealthCheck nothing is probed and no state is published', async (t) => {
    const one = await startCountingTcp(t);
    const a = `127.0.0.1:${one.port}`;
    const { c, published } = checker(t);
    c.track([specWith([a], null)]);
    assert.deepEqual(c.states(), {});
    assert.deepEqual(published, []);
    assert.equal(c.health(a)?.checked, false);
    assert.equal(one.accepted, 0);
  });

  test('Port overrides the target\'s port', async (t) => {
    const mgmt = await startCountingTcp(t);
    const deadPort = await refusedPort();
    const target = `127.0.0.1:${deadPort}`;
    const { c } = checker(t);
    c.track([specWith([target], { port: mgmt.port })]);
    await until(() => c.states()[target] === 'up', 5000, 'up through the management port');
    assert.ok(mgmt.accepted >= 1);
  });
});

test('configuredTargets lists the default pool then the routes\', each target once', () => {
  const spec = specWith(['a:1', 'b:2'], null, {
    routes: [
      { sni: ['x.test'], alpn: [], targets: [{ raw: 'b:2', host: 'b', port: 2 }, { raw: 'c:3', host: 'c', port: 3 }] },
      { sni: ['y.test'], alpn: [], targets: [{ raw: 'a:1', host: 'a', port: 1 }] },
    ],
  });
  assert.deepEqual(configuredTargets(spec).map((t) => t.raw), ['a:1', 'b:2', 'c:3']);
});
