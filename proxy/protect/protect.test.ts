// Protection rules on real loopback sockets, one in-process listener per test (limits then hold for
// this one process; across workers and generations see daemon/limits/app-limits.test.ts).
import { test } from 'node:test';
import assert from 'node:assert/strict';
import net from 'node:net';
import { once } from 'node:events';
import { captureLogger, listen, makeSpec, startEcho, waitFor } from '../testing.ts';
import { buildProxyHeaderV1 } from '../proxy-protocol.ts';
import { connectFrom, type Held } from './protect-testing.ts';

type T = { after: (fn: () => unknown) => void };

async function echo(t: T) {
  const e = await startEcho();
  t.after(() => e.close());
  return e;
}

function holdAll(t: T, held: Held[]): void {
  t.after(() => Promise.all(held.map((h) => h.close())));
}

test('a denied address gets a reset and the target sees no connection; an allowed one is served', async (t) => {
  const target = await echo(t);
  const { logger, lines } = await captureLogger('debug');
  const { port } = await listen(t, makeSpec([`127.0.0.1:${target.port}`], { allow: ['127.0.0.0/8'], deny: ['127.0.0.2/32'] }), logger);
  const denied = await connectFrom(port, '127.0.0.2');
  assert.equal(denied.verdict, 'reset');
  assert.equal((await denied.held.closed).error, 'ECONNRESET');
  assert.equal(target.connections, 0, 'no upstream connect for a denied client');
  const ok = await connectFrom(port, '127.0.0.3');
  holdAll(t, [ok.held]);
  assert.equal(ok.verdict, 'served');
  assert.equal(target.connections, 1);
  await waitFor(() => lines.some((l) => l.event === 'access' && l.outcome === 'denied'), 20_000, 'access line with outcome denied');
  const line = lines.find((l) => l.event === 'access' && l.outcome === 'denied')!;
  assert.equal(line.client, '::ffff:127.0.0.2');
});

test('MaxConnections: the N+1-th connection is refused, the next one after a close is served', async (t) => {
  const target = await echo(t);
  const { port, listener } = await listen(t, makeSpec([`127.0.0.1:${target.port}`], { maxConnections: 3 }));
  const held: Held[] = [];
  holdAll(t, held);
  for (let i = 0; i < 3; i++) {
    const c = await connectFrom(port);
    assert.equal(c.verdict, 'served', `connection ${i + 1}`);
    held.push(c.held);
  }
  const over = await connectFrom(port);
  assert.equal(over.verdict, 'reset');
  assert.equal(target.connections, 3);
  await held.shift()!.close();
  await waitFor(() => listener.counters().activeConnections === 2, 20_000, 'the closed connection to be gone');
  const next = await connectFrom(port);
  held.push(next.held);
  assert.equal(next.verdict, 'served');
});

test('QueueTimeoutMs holds a connection over the limit (not connected) until a slot frees, then serves it', async (t) => {
  const target = await echo(t);
  const { port } = await listen(t, makeSpec([`127.0.0.1:${target.port}`], { maxConnections: 1, queueTimeoutMs: 30_000 }));
  const first = await connectFrom(port);
  assert.equal(first.verdict, 'served');
  const queued = connectFrom(port, '127.0.0.1', 'second');
  // Held, not connected: the target never sees it while the first is open.
  await new Promise((r) => setTimeout(r, 300));
  assert.equal(target.connections, 1);
  await first.held.close();
  const second = await queued;
  holdAll(t, [second.held]);
  assert.equal(second.verdict, 'served');
  assert.equal(target.connections, 2);
});

test('QueueTimeoutMs: past the timeout a queued connection is reset with outcome queue-timeout', async (t) => {
  const target = await echo(t);
  const { logger, lines } = await captureLogger('debug');
  const { port } = await listen(t, makeSpec([`127.0.0.1:${target.port}`], { maxConnections: 1, queueTimeoutMs: 200 }), logger);
  const first = await connectFrom(port);
  holdAll(t, [first.held]);
  const second = await connectFrom(port);
  assert.equal(second.verdict, 'reset');
  await waitFor(() => lines.some((l) => l.event === 'access' && l.outcome === 'queue-timeout'), 20_000, 'queue-timeout access line');
});

test('PerSource MaxConnections counts per source address; over it: reset with outcome over-limit', async (t) => {
  const target = await echo(t);
  const { port } = await listen(t, makeSpec([`127.0.0.1:${target.port}`], { perSource: { maxConnections: 2, ratePerSecond: 0, burst: 1, prefix6: 64 } }));
  const held: Held[] = [];
  holdAll(t, held);
  for (const from of ['127.0.0.2', '127.0.0.3']) {
    for (let i = 0; i < 2; i++) {
      const c = await connectFrom(port, from);
      held.push(c.held);
      assert.equal(c.verdict, 'served', `${from} #${i + 1}`);
    }
    const over = await connectFrom(port, from);
    assert.equal(over.verdict, 'reset', `${from} #3`);
  }
});

test('PerSource RatePerSecond: the burst passes at once, the next is rate-limited', async (t) => {
  const target = await echo(t);
  const { logger, lines } = await captureLogger('debug');
  const { port } = await listen(t, makeSpec([`127.0.0.1:${target.port}`], { perSource: { maxConnections: 0, ratePerSecond: 0.01, burst: 3, prefix6: 64 } }), logger);
  for (let i = 0; i < 3; i++) {
    const c = await connectFrom(port, '127.0.0.4');
    assert.equal(c.verdict, 'served');
    await c.held.close();
  }
  const limited = await connectFrom(port, '127.0.0.4');
  assert.equal(limited.verdict, 'reset');
  const other = await connectFrom(port, '127.0.0.5');
  holdAll(t, [other.held]);
  assert.equal(other.verdict, 'served', 'another source has its own bucket');
  await waitFor(() => lines.some((l) => l.event === 'access' && l.outcome === 'rate-limited'), 20_000, 'rate-limited access line');
});

test('AcceptProxyProtocol: the ACL applies to the address in the PROXY header', async (t) => {
  const target = await echo(t);
  const { port } = await listen(t, makeSpec([`127.0.0.1:${target.port}`], { acceptProxyProtocol: true, deny: ['203.0.113.0/24'] }));
  const send = async (src: string) => {
    const s = net.connect(port, '127.0.0.1');
    t.after(() => s.destroy());
    await once(s, 'connect');
    const header = buildProxyHeaderV1({ address: src, port: 5555, family: 4 }, { address: '127.0.0.1', port, family: 4 });
    // One byte at a time: the header may come split anyhow.
    for (const b of Buffer.concat([header, Buffer.from('ping')])) s.write(Buffer.of(b));
    let reply = '';
    s.on('data', (d) => (reply += d.toString()));
    const err = await new Promise<string | undefined>((resolve) => {
      s.on('error', (e: NodeJS.ErrnoException) => resolve(e.code));
      s.on('close', () => resolve(undefined));
      const poll = setInterval(() => {
        if (reply.includes('ping')) {
          clearInterval(poll);
          resolve('served');
        }
      }, 10);
      s.on('close', () => clearInterval(poll));
    });
    return err;
  };
  assert.equal(await send('203.0.113.9'), 'ECONNRESET');
  assert.equal(target.connections, 0);
  assert.equal(await send('198.51.100.9'), 'served');
});

test('MaxConnectionDurationMs closes older connections; FirstByteTimeoutMs closes a silent client', async (t) => {
  const target = await echo(t);
  const { logger, lines } = await captureLogger('debug');
  const { port } = await listen(t, makeSpec([`127.0.0.1:${target.port}`], { maxConnectionDurationMs: 400 }), logger);
  const c = await connectFrom(port);
  assert.equal(c.verdict, 'served');
  await c.held.closed;
  await waitFor(() => lines.some((l) => l.event === 'access' && l.outcome === 'max-duration'), 20_000, 'max-duration access line');

  const fb = await listen(t, makeSpec([`127.0.0.1:${target.port}`], { firstByteTimeoutMs: 300 }), logger);
  const silent = net.connect(fb.port, '127.0.0.1');
  silent.on('error', () => {});
  t.after(() => silent.destroy());
  await once(silent, 'close');
  await waitFor(() => lines.some((l) => l.event === 'access' && l.outcome === 'first-byte-timeout'), 20_000, 'first-byte-timeout access line');
  const talker = await connectFrom(fb.port);
  holdAll(t, [talker.held]);
  assert.equal(talker.verdict, 'served');
  await new Promise((r) => setTimeout(r, 600));
  assert.equal(talker.held.socket.destroyed, false, 'a client that spoke is not closed by FirstByteTimeoutMs');
});
