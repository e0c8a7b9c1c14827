// Target pools end to end: a listener on loopback, real targets (one blackholed, one slow, one
// refusing), real clients (ftest simulate as a child process, clients bound to 127.0.0.x sources).
import { test } from 'node:test';
import assert from 'node:assert/strict';
import net from 'node:net';
import { once } from 'node:events';
import { spawn } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import type { TargetsReport } from './ipc/protocol.ts';
import { captureLogger, closedPorts, exchange, listen, makeSpec, startBlackhole, startEcho, waitFor } from './testing.ts';
import { Listener } from './listener.ts';

const FTEST_BIN = fileURLToPath(new URL('../bin/ftest.ts', import.meta.url));

/** `ftest simulate … --json` against 127.0.0.1:port, as a child process; its JSON summary. */
async function simulate(port: number, args: string[]): Promise<{ ok: number; errors: number; rtt: { p99: number } }> {
  const env = { ...process.env };
  delete env.NODE_OPTIONS;
  delete env.NODE_TEST_CONTEXT;
  const child = spawn(process.execPath, [FTEST_BIN, 'simulate', ...args, '--json', `127.0.0.1:${port}`], { env, stdio: ['ignore', 'pipe', 'inherit'] });
  let out = '';
  child.stdout.setEncoding('utf8').on('data', (d: string) => (out += d));
  const timer = setTimeout(() => child.kill('SIGKILL'), 120_000);
  const [code] = (await once(child, 'close')) as [number | null];
  clearTimeout(timer);
  assert.equal(code, 0, `ftest simulate exited ${code}: ${out}`);
  return JSON.parse(out) as { ok: number; errors: number; rtt: { p99: number } };
}

interface AccessLine { target?: string; attempts?: number; outcome?: string; time?: number; durationMs?: number }

test('a blackholed target among three: after the first few connections clients stop paying for it', async (t) => {
  const live = await Promise.all([startEcho('a'), startEcho('c')]);
  t.after(() => Promise.all(live.map((e) => e.close())));
  const hole = await startBlackhole();
  t.after(hole.stop);
  const bh = `127.0.0.1:${hole.port}`;
  const { logger, lines } = await captureLogger('debug');
  const reports: TargetsReport[] = [];
  // A 10-minute ejection: the run may take longer than the default 10 s on a loaded machine, and
  // the blackhole coming back for a retry after EjectMs is correct, but not what this test is about.
  const spec = makeSpec([`127.0.0.1:${live[0]!.port}`, bh, `127.0.0.1:${live[1]!.port}`], {
    connectAttemptTimeoutMs: 1000,
    outlierDetection: { consecutiveFailures: 3, ejectMs: 600_000, maxEjectMs: 600_000, maxEjectPercent: 100 },
  });
  const listener = new Listener(spec, { logger, onTargets: (r) => reports.push(r) });
  const [port] = await listener.start();
  t.after(() => listener.drain(0));

  const summary = await simulate(port!, ['-c', '10', '-n', '2000']);
  assert.equal(summary.errors, 0);
  assert.equal(summary.ok, 2000);

  const access = lines.filter((l) => l.event === 'access') as AccessLine[];
  await waitFor(() => lines.filter((l) => l.event === 'access').length >= 2000, 20_000, 'every access line');
  // Every failed attempt went to the blackhole (the others answer). It is ejected at its third
  // timeout; by then at most two clients got free (the first two timeouts) and were caught again,
  // and at most all ten are stuck on it: 10 + 3 − 1 connections paid at most, none after.
  const paid = access.filter((l) => (l.attempts ?? 1) > 1);
  assert.ok(paid.length <= 12, `${paid.length} connections tried the blackhole`);
  assert.ok(access.every((l) => l.target !== bh && l.outcome === 'ok'));
  const state = listener.targetsReport().targets.find((r) => r.target === bh);
  assert.equal(state?.state, 'ejected');
  assert.match(state?.lastError ?? '', /^ETIMEDOUT 127\.0\.0\.1:\d+$/);
  // No connection that started after the ejection tried it (start = log time − duration, in ms).
  const ejectedAt = state!.since;
  const late = paid.filter((l) => l.time! - l.durationMs! > ejectedAt + 1);
  assert.deepEqual(late, [], 'no attempt at the blackhole after its ejection');
  assert.ok(access.filter((l) => l.time! - l.durationMs! > ejectedAt + 1).length > 1000, 'most connections came after it');
  await waitFor(() => reports.some((r) => r.targets.some((x) => x.target === bh && x.state === 'ejected')), 20_000, 'a targets report with the ejection');
  assert.equal(listener.targetsReport().panic, false);
});

test('panic: when every target is ejected the pool still tries them all, and reports panic', async (t) => {
  const dead = await closedPorts(t, 2);
  const { logger, lines } = await captureLogger('debug');
  const listener = new Listener(makeSpec(dead.map((p) => `127.0.0.1:${p}`)), { logger });
  const [port] = await listener.start();
  t.after(() => listener.drain(0));
  for (let k = 0; k < 4; k++) assert.equal((await exchange(port!, 'x')).error?.code, 'ECONNRESET');
  const report = listener.targetsReport();
  assert.deepEqual(report.targets.map((r) => r.state), ['ejected', 'ejected']);
  assert.equal(report.panic, true);
  assert.equal(lines.filter((l) => l.level === 40 && String(l.msg).startsWith('panic')).length, 1, 'warned once for the episode');
  // In panic every connection still tries the targets (attempts are not skipped for health).
  const last = lines.filter((l) => l.event === 'access').at(-1) as AccessLine | undefined;
  assert.equal(last?.attempts, 4);
});

test('health from the daemon: a down target gets no new connections; OnTargetDown "close" resets its open ones', async (t) => {
  const a = await startEcho('a');
  const b = await startEcho('b');
  t.after(() => Promise.all([a.close(), b.close()]));
  const A = `127.0.0.1:${a.port}`;
  const B = `127.0.0.1:${b.port}`;
  for (const onTargetDown of ['keep', 'close'] as const) {
    const { listener, port } = await listen(t, makeSpec([A, B], { onTargetDown }));
    const open = net.connect(port, '127.0.0.1');
    open.on('error', () => {});
    await once(open, 'connect');
    open.write('hold');
    const [first] = await once(open, 'data');
    const heldBy = String(first).startsWith('a:') ? A : B;
    const closed = new Promise<NodeJS.ErrnoException | undefined>((resolve) => {
      open.once('error', resolve);
      open.once('close', () => resolve(undefined));
    });
    listener.applyHealth({ [heldBy]: 'down' });
    for (let k = 0; k < 4; k++) assert.notEqual((await exchange(port, 'x')).reply.startsWith(heldBy === A ? 'a:' : 'b:'), true);
    if (onTargetDown === 'close') {
      assert.equal((await closed)?.code, 'ECONNRESET');
    } else {
      open.write('still');
      const [more] = await once(open, 'data');
      assert.equal(String(more), 'still');
      open.destroy();
    }
    assert.equal(listener.targetsReport().targets.find((r) => r.target === heldBy)?.state, 'down');
  }
});

test('a new listener starts with the health states it is given (start.health)', async (t) => {
  const a = await startEcho('a');
  const b = await startEcho('b');
  t.after(() => Promise.all([a.close(), b.close()]));
  const spec = makeSpec([`127.0.0.1:${a.port}`, `127.0.0.1:${b.port}`]);
  const listener = new Listener(spec, { logger: (await captureLogger('silent')).logger, health: { [`127.0.0.1:${a.port}`]: 'drain' } });
  const [port] = await listener.start();
  t.after(() => listener.drain(0));
  for (let k = 0; k < 4; k++) assert.equal((await exchange(port!, 'x')).reply, 'b:x');
});

/** An echo target that answers each connection after `delayMs`, then closes; counts connections. */
async function startDelayed(delayMs: number): Promise<{ port: number; connections: number; close: () => Promise<void> }> {
  let connections = 0;
  const sockets = new Set<net.Socket>();
  const server = net.createServer((s) => {
    connections++;
    sockets.add(s);
    s.on('close', () => sockets.delete(s));
    s.on('error', () => {});
    s.once('data', (d) => setTimeout(() => s.end(d), delayMs));
  });
  server.listen(0, '127.0.0.1');
  await once(server, 'listening');
  return {
    port: (server.address() as net.AddressInfo).port,
    get connections() { return connections; },
    close: async () => {
      for (const s of sockets) s.destroy();
      await new Promise<void>((r) => server.close(() => r()));
    },
  };
}

test('least-connections and random-two give a slow target (10× longer connections) fewer new connections than round-robin', async (t) => {
  const share: Record<string, number> = {};
  for (const strategy of ['round-robin', 'least-connections', 'random-two'] as const) {
    const fast = [await startDelayed(10), await startDelayed(10)];
    const slow = await startDelayed(100);
    const all = [fast[0]!, slow, fast[1]!];
    t.after(() => Promise.all(all.map((s) => s.close())));
    const { port } = await listen(t, makeSpec(all.map((s) => `127.0.0.1:${s.port}`), { strategy }));
    const summary = await simulate(port, ['-c', '12', '-n', '600']);
    assert.equal(summary.errors, 0, strategy);
    share[strategy] = slow.connections / all.reduce((n, s) => n + s.connections, 0);
  }
  assert.ok(share['round-robin']! > 0.3, JSON.stringify(share));
  assert.ok(share['least-connections']! < share['round-robin']! * 0.6, JSON.stringify(share));
  assert.ok(share['random-two']! < share['round-robin']! * 0.8, JSON.stringify(share));
  t.diagnostic(`slow target's share of connections: ${JSON.stringify(share)}`);
});

test('source-hash: 50 client addresses keep their targets across 1,000 connections', async (t) => {
  const targets = await Promise.all(['a', 'b', 'c', 'd', 'e'].map((tag) => startEcho(tag)));
  t.after(() => Promise.all(targets.map((e) => e.close())));
  const { port } = await listen(t, makeSpec(targets.map((e) => `127.0.0.1:${e.port}`), { strategy: 'source-hash' }));
  const seen = new Map<string, Set<string>>();
  for (let round = 0; round < 20; round++) {
    await Promise.all(Array.from({ length: 50 }, async (_, k) => {
      const source = `127.0.0.${10 + k}`;
      const r = await exchangeFrom(port, source, 'x');
      assert.equal(r.error, undefined);
      const tag = r.reply.split(':')[0]!;
      (seen.get(source) ?? seen.set(source, new Set()).get(source)!).add(tag);
    }));
  }
  assert.equal(seen.size, 50);
  for (const [source, tags] of seen) assert.equal(tags.size, 1, `${source} went to ${[...tags].join(', ')}`);
  assert.ok(new Set([...seen.values()].map((s) => [...s][0])).size >= 4, 'the 50 clients spread over the targets');
});

/** Like exchange(), from a given local (source) address. */
function exchangeFrom(port: number, localAddress: string, data: string): Promise<{ reply: string; error?: Error }> {
  return new Promise((resolve) => {
    const chunks: Buffer[] = [];
    const s = net.connect({ port, host: '127.0.0.1', localAddress, allowHalfOpen: true });
    s.setTimeout(5000, () => s.destroy(new Error('timeout')));
    s.on('connect', () => s.end(data));
    s.on('data', (d: Buffer) => chunks.push(d));
    s.on('end', () => { s.destroy(); resolve({ reply: Buffer.concat(chunks).toString() }); });
    s.on('error', (error) => resolve({ reply: '', error }));
  });
}
