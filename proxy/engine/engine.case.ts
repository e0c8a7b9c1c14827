// The socket-engine conformance suite: every engine runs these with real loopback sockets.
// A "front" server accepts the test's client (paused, as the listener does), connects to an
// "upstream" server, and hands both sockets to the engine; the test then talks from both ends.
import { test, type TestContext } from 'node:test';
import assert from 'node:assert/strict';
import { once } from 'node:events';
import { randomBytes } from 'node:crypto';
import net from 'node:net';
import type { Engine, ForwardHandle, ForwardOptions, ForwardResult } from './engine.ts';
import { waitFor } from '../testing.ts';
import { socketFromFd } from './socket-from-fd.ts';

export interface Pair {
  /** The test's client socket (connected to the front). */
  readonly cli: net.Socket;
  /** The upstream server's accepted socket. */
  readonly srv: net.Socket;
  readonly handle: ForwardHandle;
  /** Resolves with the engine's one report. */
  readonly result: Promise<ForwardResult>;
  /** How many times onClose ran (must end at 1). */
  reports(): number;
}

export interface PairSetup {
  readonly opts?: Partial<ForwardOptions>;
  /** Bytes the client sends before the hand-off, read (not consumed) by the front first. */
  readonly clientFirst?: Buffer;
  /** Bytes the upstream sends on accept, read (not consumed) by the front first. */
  readonly upstreamFirst?: Buffer;
}

/** Servers for one test; closed with the test. */
export async function harness(t: TestContext, engine: Engine): Promise<(setup?: PairSetup) => Promise<Pair>> {
  const sockets = new Set<net.Socket>();
  const track = (s: net.Socket) => {
    sockets.add(s);
    s.on('error', () => {}); // resets are part of the suite; each test asserts what it expects
    s.on('close', () => sockets.delete(s));
  };
  const accepted: net.Socket[] = [];
  const waiting: ((s: net.Socket) => void)[] = [];
  let upstreamFirst: Buffer | undefined;
  const upstream = net.createServer({ allowHalfOpen: true }, (s) => {
    track(s);
    if (upstreamFirst !== undefined) s.write(upstreamFirst);
    const w = waiting.shift();
    if (w) w(s);
    else accepted.push(s);
  });
  upstream.listen(0, '127.0.0.1');
  await once(upstream, 'listening');
  const upPort = (upstream.address() as net.AddressInfo).port;

  let onFront: (s: net.Socket) => void = () => {};
  const front = net.createServer({ allowHalfOpen: true, pauseOnConnect: true }, (s) => onFront(s));
  front.listen(0, '127.0.0.1');
  await once(front, 'listening');
  const frontPort = (front.address() as net.AddressInfo).port;

  t.after(async () => {
    for (const s of sockets) s.destroy();
    await Promise.all([new Promise((r) => upstream.close(r)), new Promise((r) => front.close(r))]);
  });

  const nextAccepted = () => new Promise<net.Socket>((resolve) => {
    const s = accepted.shift();
    if (s) resolve(s);
    else waiting.push(resolve);
  });

  return async (setup: PairSetup = {}) => {
    upstreamFirst = setup.upstreamFirst;
    const handed = new Promise<{ handle: ForwardHandle; result: Promise<ForwardResult>; reports: () => number }>((resolve, reject) => {
      onFront = (c) => {
        c.on('error', () => {});
        const u = net.connect({ host: '127.0.0.1', port: upPort, allowHalfOpen: true, noDelay: true });
        u.on('error', reject);
        u.once('connect', async () => {
          u.removeListener('error', reject);
          // Let the front's sockets read ahead what each peer sent first, as inspection would.
          if (setup.clientFirst) {
            c.resume();
            c.pause();
            await waitFor(() => c.readableLength >= setup.clientFirst!.length, 5000, 'client bytes read ahead');
          }
          if (setup.upstreamFirst) await waitFor(() => u.readableLength >= setup.upstreamFirst!.length, 5000, 'upstream bytes read ahead');
          let n = 0;
          let done!: (r: ForwardResult) => void;
          const result = new Promise<ForwardResult>((r) => (done = r));
          const handle = engine.forward(c, u, { idleTimeoutMs: 0, ...setup.opts }, (r) => {
            n++;
            done(r);
          });
          resolve({ handle, result, reports: () => n });
        });
      };
    });
    const cli = net.connect({ host: '127.0.0.1', port: frontPort, allowHalfOpen: true });
    track(cli);
    await once(cli, 'connect');
    if (setup.clientFirst) cli.write(setup.clientFirst);
    const srv = await nextAccepted();
    const h = await handed;
    return { cli, srv, handle: h.handle, result: h.result, reports: h.reports };
  };
}

/** Everything `s` sends until its FIN, and whether it ended cleanly. */
export function collect(s: net.Socket): Promise<{ data: Buffer; ended: boolean; error?: string }> {
  return new Promise((resolve) => {
    const chunks: Buffer[] = [];
    let ended = false;
    s.on('data', (d: Buffer) => chunks.push(d));
    s.on('end', () => {
      ended = true;
      resolve({ data: Buffer.concat(chunks), ended });
    });
    s.on('error', (e: NodeJS.ErrnoException) => resolve({ data: Buffer.concat(chunks), ended, error: e.code ?? e.message }));
    s.on('close', () => resolve({ data: Buffer.concat(chunks), ended }));
  });
}

/** Resolves with the error code when `s` is reset, or at its FIN or close (sockets here are half-open). */
function closeOf(s: net.Socket): Promise<{ error?: string; ended: boolean }> {
  return new Promise((resolve) => {
    s.on('end', () => resolve({ ended: true }));
    s.on('error', (e: NodeJS.ErrnoException) => resolve({ error: e.code ?? e.message, ended: false }));
    s.on('close', () => resolve({ ended: false }));
    s.resume();
  });
}

export function engineCase(name: string, engine: () => Engine): void {
  test(`${name}: 10 MiB each way arrive byte-exact, and the counts say so`, async (t) => {
    const pair = await harness(t, engine());
    const { cli, srv, result, reports } = await pair();
    const up = randomBytes(10 * 1024 * 1024);
    const down = randomBytes(10 * 1024 * 1024);
    const atSrv = collect(srv);
    const atCli = collect(cli);
    cli.end(up);
    srv.end(down);
    const [s, c, r] = await Promise.all([atSrv, atCli, result]);
    assert.ok(s.data.equals(up), `upstream got ${s.data.length} bytes`);
    assert.ok(c.data.equals(down), `client got ${c.data.length} bytes`);
    assert.equal(s.ended && c.ended, true);
    assert.deepEqual(r, { bytesIn: up.length, bytesOut: down.length, outcome: 'ok' });
    assert.equal(reports(), 1);
  });

  test(`${name}: the hand-off sends nothing: no FIN or reset reaches either side`, async (t) => {
    const pair = await harness(t, engine());
    const { cli, srv, result } = await pair();
    let srvEnded = false;
    let cliEnded = false;
    srv.on('end', () => (srvEnded = true));
    cli.on('end', () => (cliEnded = true));
    // A round trip each way after the hand-off: any FIN from it would have arrived before these.
    cli.write('ping');
    const [p] = await once(srv, 'data');
    assert.equal(String(p), 'ping');
    srv.write('pong');
    const [q] = await once(cli, 'data');
    assert.equal(String(q), 'pong');
    assert.equal(srvEnded || cliEnded, false);
    cli.end();
    srv.end();
    assert.equal((await result).outcome, 'ok');
  });

  test(`${name}: a client FIN is passed on and the upstream can still answer`, async (t) => {
    const pair = await harness(t, engine());
    const { cli, srv, result } = await pair();
    const atCli = collect(cli);
    cli.end('request');
    const got: Buffer[] = [];
    srv.on('data', (d: Buffer) => got.push(d));
    await once(srv, 'end');
    assert.equal(Buffer.concat(got).toString(), 'request');
    srv.write('reply after your FIN');
    srv.end(' and done');
    const c = await atCli;
    assert.equal(c.data.toString(), 'reply after your FIN and done');
    assert.equal(c.ended, true);
    assert.deepEqual(await result, { bytesIn: 7, bytesOut: 29, outcome: 'ok' });
  });

  test(`${name}: an upstream FIN is passed on and the client can still send`, async (t) => {
    const pair = await harness(t, engine());
    const { cli, srv, result } = await pair();
    const atSrv = collect(srv);
    srv.end('banner');
    const got: Buffer[] = [];
    cli.on('data', (d: Buffer) => got.push(d));
    await once(cli, 'end');
    assert.equal(Buffer.concat(got).toString(), 'banner');
    cli.end('late upload');
    const s = await atSrv;
    assert.equal(s.data.toString(), 'late upload');
    assert.equal(s.ended, true);
    assert.deepEqual(await result, { bytesIn: 11, bytesOut: 6, outcome: 'ok' });
  });

  test(`${name}: a client reset resets the upstream`, async (t) => {
    const pair = await harness(t, engine());
    const { cli, srv, result } = await pair();
    cli.write('x');
    await once(srv, 'data');
    const srvClose = closeOf(srv);
    cli.resetAndDestroy();
    assert.equal((await srvClose).error, 'ECONNRESET');
    assert.equal((await result).outcome, 'client-error');
  });

  test(`${name}: an upstream reset resets the client`, async (t) => {
    const pair = await harness(t, engine());
    const { cli, srv, result } = await pair();
    srv.write('y');
    await once(cli, 'data');
    const cliClose = closeOf(cli);
    srv.resetAndDestroy();
    assert.equal((await cliClose).error, 'ECONNRESET');
    assert.equal((await result).outcome, 'upstream-error');
  });

  test(`${name}: the idle timeout closes both sides`, async (t) => {
    const pair = await harness(t, engine());
    const { cli, srv, result } = await pair({ opts: { idleTimeoutMs: 150 } });
    cli.write('one byte then silence'.slice(0, 1));
    await once(srv, 'data');
    const [c, s] = await Promise.all([closeOf(cli), closeOf(srv)]);
    assert.equal(c.error, undefined);
    assert.equal(s.error, undefined);
    const r = await result;
    assert.equal(r.outcome, 'idle-timeout');
    assert.equal(r.bytesIn, 1);
  });

  test(`${name}: the drain deadline closes every open pair`, async (t) => {
    const e = engine();
    const pair = await harness(t, e);
    const a = await pair();
    const b = await pair();
    a.cli.write('a');
    await once(a.srv, 'data');
    const closes = [a.cli, a.srv, b.cli, b.srv].map(closeOf);
    e.drainBy(50);
    const results = await Promise.all([a.result, b.result]);
    assert.deepEqual(results.map((r) => r.outcome), ['drained', 'drained']);
    assert.equal(results[0]!.bytesIn, 1);
    await Promise.all(closes);
  });

  test(`${name}: close() ends one pair now and reports it once`, async (t) => {
    const pair = await harness(t, engine());
    const { cli, srv, handle, result, reports } = await pair();
    const closes = [closeOf(cli), closeOf(srv)];
    handle.close();
    assert.equal((await result).outcome, 'drained');
    await Promise.all(closes);
    handle.close(); // twice is harmless
    await new Promise((r) => setImmediate(r));
    assert.equal(reports(), 1);
  });

  test(`${name}: close(true) resets both sides (OnTargetDown "close")`, async (t) => {
    const pair = await harness(t, engine());
    const { cli, srv, handle, result } = await pair();
    cli.write('x');
    await once(srv, 'data');
    const closes = [closeOf(cli), closeOf(srv)];
    handle.close(true);
    const [c, s] = await Promise.all(closes);
    assert.equal(c!.error, 'ECONNRESET');
    assert.equal(s!.error, 'ECONNRESET');
    assert.equal((await result).outcome, 'drained');
  });

  test(`${name}: the prelude reaches the upstream before the client's bytes`, async (t) => {
    const pair = await harness(t, engine());
    const { cli, srv, result } = await pair({ opts: { preludeUp: Buffer.from('PROXY TCP4 1.2.3.4 5.6.7.8 1 2\r\n') } });
    const atSrv = collect(srv);
    cli.end('payload');
    srv.end();
    assert.equal((await atSrv).data.toString(), 'PROXY TCP4 1.2.3.4 5.6.7.8 1 2\r\npayload');
    assert.equal((await result).bytesIn, 7);
  });

  test(`${name}: bytes the sockets read before the hand-off are forwarded both ways`, async (t) => {
    const pair = await harness(t, engine());
    const { cli, srv, result } = await pair({ clientFirst: Buffer.from('hello-from-client'), upstreamFirst: Buffer.from('220 greeting\r\n'), opts: { preludeUp: Buffer.from('HDR|') } });
    const atSrv = collect(srv);
    const atCli = collect(cli);
    cli.end('+more');
    srv.end('+more');
    assert.equal((await atSrv).data.toString(), 'HDR|hello-from-client+more');
    assert.equal((await atCli).data.toString(), '220 greeting\r\n+more');
    assert.equal((await result).outcome, 'ok');
  });

  test(`${name}: 200 concurrent pairs each carry their own bytes`, async (t) => {
    const e = engine();
    const pair = await harness(t, e);
    const pairs: Pair[] = [];
    for (let i = 0; i < 200; i++) pairs.push(await pair());
    const checks = pairs.map(async (p, i) => {
      const up = Buffer.alloc(64 * 1024 + i, i & 0xff);
      const down = Buffer.alloc(32 * 1024 + i, (i * 7) & 0xff);
      const [s, c] = await Promise.all([collect(p.srv), collect(p.cli), p.cli.end(up), p.srv.end(down)]);
      assert.ok(s.data.equals(up), `pair ${i} upstream bytes`);
      assert.ok(c.data.equals(down), `pair ${i} client bytes`);
      assert.deepEqual(await p.result, { bytesIn: up.length, bytesOut: down.length, outcome: 'ok' });
    });
    await Promise.all(checks);
    await waitFor(() => e.open === 0, 5000, 'every pair reported');
  });
}

/**
 * detach (issue 16), for engines whose handles have it: a pair taken out at a clean point and
 * forwarded again from its fds loses, duplicates and reorders nothing; a half-closed pair stays.
 */
export function detachCase(name: string, engine: () => Engine): void {
  test(`${name}: detach and re-add 8 times under a stream both ways: every byte arrives once, in order`, async (t) => {
    const e = engine();
    const pair = await harness(t, e);
    const first = await pair();
    const { cli, srv } = first;
    const up = randomBytes(12 * 1024 * 1024);
    const down = randomBytes(3 * 1024 * 1024);
    const atSrv = collect(srv);
    const atCli = collect(cli);
    // The upstream reads in fits and starts (long enough for the kernel's buffers to fill), so
    // bytes sit in the engine's own buffers at some detaches.
    srv.pause();
    const stutter = setInterval(() => (srv.isPaused() ? srv.resume() : srv.pause()), 250);
    t.after(() => clearInterval(stutter));
    // 32 KiB every few ms: the stream lasts long enough for the detaches to land in the middle of it.
    const writeSlowly = async (s: net.Socket, data: Buffer) => {
      for (let off = 0; off < data.length; off += 64 * 1024) {
        if (!s.write(data.subarray(off, off + 64 * 1024))) await once(s, 'drain');
        await new Promise((r) => setImmediate(r));
      }
    };
    const writing = Promise.all([writeSlowly(cli, up), writeSlowly(srv, down)]);
    let handle = first.handle;
    let result = first.result;
    let movedIn = 0;
    let movedOut = 0;
    let detached = 0;
    let pendingSeen = 0;
    for (let i = 0; detached < 8; i++) {
      await new Promise((r) => setTimeout(r, 20 + (i % 4) * 20));
      const r = await handle.detach!();
      assert.ok(r.ok, `detach ${detached + 1} refused: ${r.ok ? '' : r.reason}`);
      detached++;
      if (r.pair.toUpstream.length + r.pair.toClient.length > 0) pendingSeen++;
      movedIn += r.pair.bytesIn;
      movedOut += r.pair.bytesOut;
      const c = socketFromFd(r.pair.clientFd);
      const u = socketFromFd(r.pair.upstreamFd);
      let done!: (x: ForwardResult) => void;
      result = new Promise<ForwardResult>((res) => (done = res));
      handle = e.forward(c, u, { idleTimeoutMs: 0, preludeUp: r.pair.toUpstream, preludeDown: r.pair.toClient }, (x) => done(x));
    }
    clearInterval(stutter);
    srv.resume();
    // Both directions stay open until the detaches are done (a half-closed pair is not moved).
    await writing;
    cli.end();
    srv.end();
    const [s, c, last] = await Promise.all([atSrv, atCli, result]);
    assert.equal(detached, 8);
    assert.ok(s.data.equals(up), `upstream got ${s.data.length} of ${up.length} bytes intact`);
    assert.ok(c.data.equals(down), `client got ${c.data.length} of ${down.length} bytes intact`);
    assert.equal(last.outcome, 'ok');
    // Bytes in the engine's buffers at a detach count where they were read; re-sent, not re-read.
    assert.equal(movedIn + last.bytesIn, up.length);
    assert.equal(movedOut + last.bytesOut, down.length);
    t.diagnostic(`detached ${detached} times, ${pendingSeen} with bytes in the engine's buffers`);
    await waitFor(() => e.open === 0, 5000, 'every pair reported');
  });

  test(`${name}: a half-closed pair is not detached and keeps forwarding`, async (t) => {
    const pair = await harness(t, engine());
    const { cli, srv, handle, result, reports } = await pair();
    const atSrv = collect(srv);
    const atCli = collect(cli);
    cli.end('bye');
    assert.equal((await atSrv).data.toString(), 'bye');
    assert.deepEqual(await handle.detach!(), { ok: false, reason: 'half-closed' });
    srv.end('later');
    assert.equal((await atCli).data.toString(), 'later');
    assert.equal((await result).outcome, 'ok');
    assert.equal(reports(), 1);
  });

  test(`${name}: a pair already closed answers gone, and reports once`, async (t) => {
    const pair = await harness(t, engine());
    const { cli, srv, handle, result, reports } = await pair();
    cli.resume();
    srv.resume();
    cli.end();
    srv.end();
    await result;
    assert.deepEqual(await handle.detach!(), { ok: false, reason: 'gone' });
    assert.equal(reports(), 1);
  });

  test(`${name}: detaching 50 pairs at once while they close or reset: each is detached or reported, never both`, async (t) => {
    const e = engine();
    const pair = await harness(t, e);
    const pairs: Pair[] = [];
    for (let i = 0; i < 50; i++) pairs.push(await pair());
    for (const p of pairs) {
      p.cli.resume();
      p.srv.resume();
    }
    const answers = pairs.map((p, i) => {
      // A third close, a third reset, a third stay: the detach races each.
      if (i % 3 === 0) {
        p.cli.end();
        p.srv.end();
      } else if (i % 3 === 1) p.cli.resetAndDestroy();
      return p.handle.detach!();
    });
    const rs = await Promise.all(answers);
    for (const [i, r] of rs.entries()) {
      if (r.ok) {
        assert.equal(pairs[i]!.reports(), 0, `pair ${i} detached and reported`);
        const c = socketFromFd(r.pair.clientFd);
        const u = socketFromFd(r.pair.upstreamFd);
        c.on('error', () => {});
        u.on('error', () => {});
        c.destroy();
        u.destroy();
      } else {
        await pairs[i]!.result;
        assert.equal(pairs[i]!.reports(), 1, `pair ${i} refused (${r.reason}) and reported once`);
      }
    }
    assert.ok(rs.filter((r, i) => i % 3 === 2 && r.ok).length >= 1, 'the untouched pairs were detached');
    await waitFor(() => e.open === 0, 5000, 'every pair reported or detached');
  });
}

/** preludeDown (a handed-over pair's bytes for the client), for every engine. */
export function preludeDownCase(name: string, engine: () => Engine): void {
  test(`${name}: preludeDown reaches the client before anything the upstream sends`, async (t) => {
    const pair = await harness(t, engine());
    const { cli, srv, result } = await pair({ opts: { preludeDown: Buffer.from('pending|') } });
    const atCli = collect(cli);
    const atSrv = collect(srv);
    srv.end('live');
    cli.end();
    assert.equal((await atCli).data.toString(), 'pending|live');
    assert.equal((await atSrv).data.length, 0);
    assert.equal((await result).bytesOut, 'pending|live'.length);
  });
}
