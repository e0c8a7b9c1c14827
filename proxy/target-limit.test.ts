// Per-target MaxConnections on real loopback sockets, one in-process listener per test (the limit
// holds per listener process): a full target is skipped, all full → refused (over-limit,
// ERR_TARGETS_FULL) or, with QueueTimeoutMs, held until a connection to the pool's targets ends.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { captureLogger, listen, makeSpec, startEcho, targetSpec, waitFor } from './testing.ts';
import { connectFrom, type Held } from './protect/protect-testing.ts';
import type { ListenerSpec, TargetSpec } from './spec.ts';

type T = { after: (fn: () => unknown) => void };

async function echo(t: T) {
  const e = await startEcho();
  t.after(() => e.close());
  return e;
}

function limited(port: number, maxConnections?: number): TargetSpec {
  const spec = targetSpec(`127.0.0.1:${port}`);
  return maxConnections === undefined ? spec : { ...spec, maxConnections };
}

function spec(targets: TargetSpec[], over: Partial<ListenerSpec> = {}): ListenerSpec {
  return makeSpec([], { ...over, targets });
}

function holdAll(t: T, held: Held[]): void {
  t.after(() => Promise.all(held.map((h) => h.close())));
}

test('a target with MaxConnections 2 gets at most 2 open connections; the other target takes the rest', async (t) => {
  const a = await echo(t);
  const b = await echo(t);
  const { port, listener } = await listen(t, spec([limited(a.port, 2), limited(b.port)]));
  const held: Held[] = [];
  holdAll(t, held);
  for (let i = 0; i < 8; i++) {
    const c = await connectFrom(port);
    held.push(c.held);
    assert.equal(c.verdict, 'served', `connection ${i + 1}`);
  }
  // Round-robin alone would have sent 4 of the 8 to the limited target.
  assert.equal(a.connections, 2);
  assert.equal(b.connections, 6);
  assert.equal(listener.targets.get(`127.0.0.1:${a.port}`)!.activeConnections, 2);
  assert.equal(listener.targets.panic, false);
});

test('every target full: the next connection is reset with outcome over-limit (ERR_TARGETS_FULL), no upstream connect', async (t) => {
  const a = await echo(t);
  const b = await echo(t);
  const { logger, lines } = await captureLogger('debug');
  const { port, listener } = await listen(t, spec([limited(a.port, 1), limited(b.port, 1)]), logger);
  const held: Held[] = [];
  holdAll(t, held);
  for (let i = 0; i < 2; i++) {
    const c = await connectFrom(port);
    held.push(c.held);
    assert.equal(c.verdict, 'served', `connection ${i + 1}`);
  }
  const over = await connectFrom(port);
  assert.equal(over.verdict, 'reset');
  assert.equal((await over.held.closed).error, 'ECONNRESET');
  assert.equal(a.connections + b.connections, 2, 'no upstream connect for the refused client');
  await waitFor(() => lines.some((l) => l.event === 'access' && l.outcome === 'over-limit'), 20_000, 'access line with outcome over-limit');
  const line = lines.find((l) => l.event === 'access' && l.outcome === 'over-limit')!;
  assert.equal(line.code, 'ERR_TARGETS_FULL');
  // A slot frees: the next one is served again.
  await held.shift()!.close();
  // The proxy hears of that close on its own schedule (the engine reports it): wait for the slot.
  const active = () => [a.port, b.port].map((p) => listener.targets.get(`127.0.0.1:${p}`)!.activeConnections);
  await waitFor(() => active().some((n) => n === 0), 10_000, 'a free slot');
  const next = await connectFrom(port);
  held.push(next.held);
  assert.equal(next.verdict, 'served');
});

test('QueueTimeoutMs: with every target full a connection waits (not connected) and is served once one closes', async (t) => {
  const a = await echo(t);
  const b = await echo(t);
  const { port, listener } = await listen(t, spec([limited(a.port, 1), limited(b.port, 1)], { queueTimeoutMs: 30_000 }));
  const first = await connectFrom(port);
  const second = await connectFrom(port);
  holdAll(t, [second.held]);
  assert.deepEqual([first.verdict, second.verdict], ['served', 'served']);
  const queued = connectFrom(port, '127.0.0.1', 'third');
  await waitFor(() => listener.targets.waiting === 1, 20_000, 'the third connection to wait for a slot');
  assert.equal(a.connections + b.connections, 2, 'held, not connected');
  await first.held.close();
  const third = await queued;
  holdAll(t, [third.held]);
  assert.equal(third.verdict, 'served');
  assert.equal(a.connections + b.connections, 3);
  assert.equal(listener.targets.waiting, 0);
});

test('QueueTimeoutMs: past the timeout a waiting connection is reset with outcome over-limit', async (t) => {
  const a = await echo(t);
  const { logger, lines } = await captureLogger('debug');
  const { port, listener } = await listen(t, spec([limited(a.port, 1)], { queueTimeoutMs: 200 }), logger);
  const first = await connectFrom(port);
  holdAll(t, [first.held]);
  assert.equal(first.verdict, 'served');
  const second = await connectFrom(port);
  assert.equal(second.verdict, 'reset');
  await waitFor(() => lines.some((l) => l.event === 'access' && l.outcome === 'over-limit' && l.code === 'ERR_TARGETS_FULL'), 20_000, 'over-limit access line');
  assert.equal(a.connections, 1);
  assert.equal(listener.targets.waiting, 0, 'the timed-out waiter left the queue');
});
