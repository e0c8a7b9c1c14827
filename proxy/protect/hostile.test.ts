// Hostile clients (issue 12 §3): the listener keeps serving everyone else. Real sockets; the
// descriptor-exhaustion case runs the listener in a child process under `prlimit --nofile`.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import net from 'node:net';
import { once } from 'node:events';
import { readFileSync } from 'node:fs';
import { listen, makeSpec, startEcho, waitFor } from '../testing.ts';
import { buildProxyHeaderV1 } from '../proxy-protocol.ts';
import { connectFrom, type Held } from './protect-testing.ts';
import { spawnListener } from './hostile-testing.ts';

type T = { after: (fn: () => unknown) => void };

async function echo(t: T) {
  const e = await startEcho();
  t.after(() => e.close());
  return e;
}

test('EMFILE: over the descriptor limit the listener resets new clients, keeps forwarding, logs once, resumes', async (t) => {
  const target = await echo(t);
  const l = await spawnListener(t, makeSpec([`127.0.0.1:${target.port}`]), 64);
  const results = await Promise.all(Array.from({ length: 60 }, (_, i) => connectFrom(l.port, '127.0.0.1', `m${i}`)));
  const held: Held[] = results.map((r) => r.held);
  t.after(() => Promise.all(held.map((h) => h.close())));
  const served = results.filter((r) => r.verdict === 'served');
  t.diagnostic(`60 clients at once under nofile=64: ${served.length} served, ${results.length - served.length} reset`);
  assert.ok(served.length > 0 && served.length < 60);
  assert.ok(l.alive(), 'no crash');

  // No busy loop while at the limit: CPU over one second (a spinning accept loop burns ~100 ticks).
  const cpu0 = l.cpuTicks();
  await new Promise((r) => setTimeout(r, 1000));
  const ticks = l.cpuTicks() - cpu0;
  t.diagnostic(`CPU while at the limit: ${ticks} ticks in 1 s`);
  assert.ok(ticks < 50, `${ticks} ticks`);

  // Open connections keep forwarding.
  const s = served[0]!.held.socket;
  s.write('again');
  await waitFor(() => s.bytesRead > 0 && !s.destroyed, 20_000, 'echo on an open connection');
  const [reply] = await Promise.race([once(s, 'data'), new Promise<[Buffer]>((r) => setTimeout(() => r([Buffer.from('none')]), 5000))]);
  assert.match(String(reply), /again/);

  // Logged once for the whole episode, with a structured marker.
  const starts = l.lines.filter((x) => x.fdEpisode === 'start');
  assert.equal(starts.length, 1);
  assert.equal(starts[0]!.code, 'EMFILE');

  // Close everything: the same port serves again.
  await Promise.all(held.map((h) => h.close()));
  let ok = false;
  await waitFor(async () => {
    const c = await connectFrom(l.port);
    ok = c.verdict === 'served';
    await c.held.close();
    return ok;
  }, 10_000, 'a new client served after descriptors freed');
  assert.ok(l.alive());
});

async function plainExchange(port: number, i: number): Promise<boolean> {
  const c = await connectFrom(port, '127.0.0.1', `good${i}`, 5000);
  await c.held.close();
  return c.verdict === 'served';
}

/** Runs `flood` while a good client keeps exchanging (at least 10 times); counts its outcomes. */
async function whileFlooding(port: number, flood: () => Promise<void>, goodOnce = plainExchange): Promise<{ good: number; bad: number }> {
  let done = false;
  let good = 0;
  let bad = 0;
  const client = (async () => {
    for (let i = 0; i < 2000 && (!done || good + bad < 10); i++) {
      if (await goodOnce(port, i)) good++;
      else bad++;
    }
  })();
  await flood();
  done = true;
  await client;
  return { good, bad };
}

function instantReset(port: number): Promise<void> {
  return new Promise((resolve) => {
    const s = net.connect(port, '127.0.0.1');
    s.on('error', () => {});
    s.on('connect', () => {
      s.resetAndDestroy();
      resolve();
    });
    s.on('close', () => resolve());
  });
}

test('floods of instant resets and half-open clients: others are served, nothing leaks', async (t) => {
  const target = await echo(t);
  const { port, listener } = await listen(t, makeSpec([`127.0.0.1:${target.port}`]));
  const resets = await whileFlooding(port, async () => {
    for (let round = 0; round < 20; round++) await Promise.all(Array.from({ length: 50 }, () => instantReset(port)));
  });
  t.diagnostic(`1000 instant resets: good client ${resets.good} served, ${resets.bad} failed`);
  assert.ok(resets.good >= 10);
  assert.equal(resets.bad, 0);

  // Half-open: connect, send a FIN at once, never read; the session must end, not linger.
  const halfOpen: net.Socket[] = [];
  t.after(() => halfOpen.forEach((s) => s.destroy()));
  const half = await whileFlooding(port, async () => {
    for (let i = 0; i < 200; i++) {
      const s = net.connect({ port, host: '127.0.0.1', allowHalfOpen: true });
      s.on('error', () => {});
      halfOpen.push(s);
      await once(s, 'connect');
      s.end();
    }
  });
  t.diagnostic(`200 half-open clients: good client ${half.good} served, ${half.bad} failed`);
  assert.ok(half.good >= 10);
  assert.equal(half.bad, 0);
  await waitFor(() => listener.counters().activeConnections === 0, 10_000, 'every half-open session to end once the echo ends its side');
});

test('connections closed mid-ClientHello on a passthrough app: others are served, no session leaks', async (t) => {
  const target = await echo(t);
  const hello = readFileSync(new URL('../tls/fixtures/openssl-sni-alpn.bin', import.meta.url));
  const { port, listener } = await listen(t, makeSpec([`127.0.0.1:${target.port}`], { tls: { mode: 'passthrough', certs: [] } }));
  // The good client sends a whole ClientHello; passthrough forwards it and the echo sends it back.
  const goodHello = (p: number) => new Promise<boolean>((resolve) => {
    const s = net.connect(p, '127.0.0.1');
    let got = 0;
    const timer = setTimeout(() => finish(false), 5000);
    const finish = (ok: boolean) => {
      clearTimeout(timer);
      s.destroy();
      resolve(ok);
    };
    s.on('error', () => finish(false));
    s.on('connect', () => s.write(hello));
    s.on('data', (d) => {
      got += d.length;
      if (got >= hello.length) finish(true);
    });
  });
  const r = await whileFlooding(port, async () => {
    for (let round = 0; round < 10; round++) {
      await Promise.all(Array.from({ length: 30 }, (_, i) => new Promise<void>((resolve) => {
        const s = net.connect(port, '127.0.0.1');
        s.on('error', () => {});
        s.on('close', () => resolve());
        s.on('connect', () => {
          s.write(hello.subarray(0, 1 + ((round * 30 + i) % (hello.length - 1))));
          if (i % 2 === 0) s.destroy();
          else s.resetAndDestroy();
        });
      })));
    }
  }, goodHello);
  t.diagnostic(`300 clients closed mid-ClientHello: good client ${r.good} served, ${r.bad} failed`);
  assert.ok(r.good >= 10);
  assert.equal(r.bad, 0);
  await waitFor(() => listener.counters().activeConnections === 0, 10_000, 'no inspecting session left behind');
  assert.equal(target.connections, r.good, 'no upstream for a half ClientHello');
});

test('PROXY headers in 1-byte writes from many clients at once: each is served', async (t) => {
  const target = await echo(t);
  const { port, listener } = await listen(t, makeSpec([`127.0.0.1:${target.port}`], { acceptProxyProtocol: true }));
  const one = async (i: number): Promise<boolean> => {
    const s = net.connect(port, '127.0.0.1');
    s.on('error', () => {});
    await once(s, 'connect');
    const bytes = Buffer.concat([buildProxyHeaderV1({ address: `10.0.${i}.1`, port: 1000 + i, family: 4 }, { address: '127.0.0.1', port, family: 4 }), Buffer.from(`p${i}`)]);
    let reply = '';
    s.on('data', (d) => (reply += d));
    for (const b of bytes) {
      s.write(Buffer.of(b));
      await new Promise((r) => setImmediate(r));
    }
    await waitFor(() => reply.includes(`p${i}`) || s.destroyed, 10_000, `reply ${i}`);
    s.destroy();
    return reply.includes(`p${i}`);
  };
  const oks = await Promise.all(Array.from({ length: 50 }, (_, i) => one(i)));
  assert.equal(oks.filter(Boolean).length, 50);
  await waitFor(() => listener.counters().activeConnections === 0, 10_000, 'sessions closed');
});
