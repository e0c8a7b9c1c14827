// Connection handover between two listeners in one process (issue 16 §2, the adopting side): a
// session taken off one listener (its native pair detached) and adopted by another is counted there
// like one it accepted — on its target (least-connections, MaxConnections) and against the app's
// limits — keeps forwarding, and is released when it ends. (The daemon-level tests move sessions
// between processes; in one process a JS-engine socket cannot be resumed after readStop, so these
// run on the native engine, and skip, saying why, without it.)
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { listen, makeSpec, startEcho, waitFor } from './testing.ts';
import { connectFrom, type Held } from './protect/protect-testing.ts';
import type { Listener } from './listener.ts';
import type { ListenerSpec } from './spec.ts';
import type { HandOff } from './session.ts';

type T = { after: (fn: () => unknown) => void; skip: (why: string) => void };

async function pair(t: T, spec: ListenerSpec): Promise<{ from: Listener; to: Listener; fromPort: number; toPort: number } | undefined> {
  const a = await listen(t, spec);
  const b = await listen(t, spec);
  if (a.listener.engine.kind !== 'native') {
    t.skip('the native engine is not built (or FPROXY_ENGINE=js): in one process only a detached native pair can be resumed');
    return undefined;
  }
  return { from: a.listener, to: b.listener, fromPort: a.port, toPort: b.port };
}

/**
 * Drain `from`, handing every session to `to`, as the daemon relays them between processes. Each
 * in-process listener has its own limit authority, so no lease can move between them (as across a
 * daemon upgrade): the lease is dropped here, as the daemon drops what it could not move.
 */
async function handAll(from: Listener, to: Listener): Promise<number> {
  const { handedOver } = await from.drain(60_000, (h: HandOff) => {
    const { lease: _notMovable, ...state } = h.state;
    to.adopt(h.client, h.upstream, { ...state, pending: h.fromClient.toString('base64') }, h.fromUpstream);
  });
  return handedOver ?? 0;
}

function echoes(h: Held, text: string): Promise<boolean> {
  return new Promise((resolve) => {
    let got = '';
    const onData = (d: Buffer) => {
      got += d.toString();
      if (got.includes(text)) {
        h.socket.removeListener('data', onData);
        resolve(true);
      }
    };
    h.socket.on('data', onData);
    h.socket.write(text);
  });
}

test('an adopted session is counted on its target in the adopting listener, forwards there, and is released when it ends', async (t) => {
  const echo = await startEcho();
  t.after(() => echo.close());
  const target = `127.0.0.1:${echo.port}`;
  const p = await pair(t, makeSpec([target]));
  if (p === undefined) return;
  const held: Held[] = [];
  t.after(() => Promise.all(held.map((h) => h.close())));
  for (let i = 0; i < 3; i++) {
    const c = await connectFrom(p.fromPort, '127.0.0.1', `hello ${i}`);
    assert.equal(c.verdict, 'served');
    held.push(c.held);
  }
  assert.equal(p.from.targets.get(target)!.activeConnections, 3);
  assert.equal(await handAll(p.from, p.to), 3);
  assert.equal(p.from.targets.get(target)!.activeConnections, 0);
  assert.equal(p.to.targets.get(target)!.activeConnections, 3);
  assert.equal(p.to.activeConnections, 3);
  for (const h of held) assert.equal(await echoes(h, 'after'), true);
  await held.shift()!.close();
  await waitFor(() => p.to.targets.get(target)!.activeConnections === 2, 10_000, 'the closed one released on its target');
  assert.equal(p.to.activeConnections, 2);
});

test('adopted sessions hold app MaxConnections slots in the adopting listener: a new connection over the limit is refused until one ends', async (t) => {
  const echo = await startEcho();
  t.after(() => echo.close());
  const p = await pair(t, makeSpec([`127.0.0.1:${echo.port}`], { maxConnections: 2 }));
  if (p === undefined) return;
  const held: Held[] = [];
  t.after(() => Promise.all(held.map((h) => h.close())));
  for (let i = 0; i < 2; i++) {
    const c = await connectFrom(p.fromPort);
    assert.equal(c.verdict, 'served');
    held.push(c.held);
  }
  assert.equal(await handAll(p.from, p.to), 2);
  // The adopting listener leases the two slots from its authority (asynchronously): wait for them.
  const over = await waitFor(async () => {
    const c = await connectFrom(p.toPort);
    if (c.verdict === 'served') {
      await c.held.close();
      return undefined;
    }
    return c;
  }, 10_000, 'a third connection refused');
  assert.equal(over.verdict, 'reset');
  await held.shift()!.close();
  const next = await waitFor(async () => {
    const c = await connectFrom(p.toPort);
    if (c.verdict === 'served') return c;
    return undefined;
  }, 10_000, 'a connection served once an adopted one ended');
  held.push(next.held);
  for (const h of held) assert.equal(await echoes(h, 'still'), true);
});
