// The native engine against the shared conformance suite, plus what only it can show (buffers
// pooled, pairs counted on the C side), with `threads` engine loop threads (0: the inline loop on
// Node's own thread, the default; 1+: loop threads). Skips, saying why, when the addon is not built.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { once } from 'node:events';
import { closeSync, existsSync, readFileSync } from 'node:fs';
import { randomBytes } from 'node:crypto';
import type net from 'node:net';
import { connect as netConnect } from 'node:net';
import { spawn } from 'node:child_process';
import { createInterface } from 'node:readline';
import { collect, detachCase, engineCase, harness, preludeDownCase } from './engine.case.ts';
import { JsEngine } from './js-engine.ts';
import { DEFAULT_OFFLOAD_THREADS, findAddon, NativeEngine } from './native-engine.ts';
import { exchange, listen, makeSpec, startEcho, waitFor } from '../testing.ts';

/** Whether the loop threads should have rings: built with liburing (its header was there for
 * `make native`), allowed by the kernel (io_uring_disabled 0), and not turned off. */
function uringExpected(): boolean {
  if (process.env.FPROXY_ENGINE_URING === '0' || !existsSync('/usr/include/liburing.h')) return false;
  try {
    return readFileSync('/proc/sys/kernel/io_uring_disabled', 'utf8').trim() === '0';
  } catch {
    return true; // before Linux 6.6 there is no such switch
  }
}

export function nativeEngineCase(threads: number): void {
  const label = threads === 0 ? 'native' : `native (${threads} loop thread${threads > 1 ? 's' : ''})`;
  const addon = findAddon();
  if (addon === undefined) {
    test('native engine', { skip: 'build/native/forwarder.node is not built (make native needs a C compiler)' }, () => {});
  } else {
    const native = (): NativeEngine => NativeEngine.get(new JsEngine(), threads, addon);
    engineCase(label, native);
    detachCase(label, native);
    preludeDownCase(label, native);

    test(`${label}: an idle pair holds no user-space buffer`, async (t) => {
      const e = native();
      const pair = await harness(t, e);
      const { cli, srv, result } = await pair();
      srv.on('data', () => {});
      cli.write(Buffer.alloc(256 * 1024, 1));
      cli.on('data', () => {});
      srv.write(Buffer.alloc(256 * 1024, 2));
      await waitFor(() => e.stats().buffersInUse === 0 && srv.bytesRead === 256 * 1024 && cli.bytesRead === 256 * 1024, 20_000, 'transfer done');
      assert.equal(e.stats().pairs, 1);
      assert.equal(e.stats().buffersInUse, 0);
      cli.end();
      srv.end();
      assert.equal((await result).outcome, 'ok');
      await waitFor(() => e.stats().pairs === 0, 20_000, 'pair gone');
    });

    test(`${label}: its loop threads forward through io_uring where the kernel gives them one (FPROXY_ENGINE_URING=0: epoll)`, async (t) => {
      const e = native();
      const pair = await harness(t, e);
      const { cli, srv, result } = await pair();
      cli.write('ping');
      assert.equal(String((await once(srv, 'data'))[0]), 'ping');
      srv.write('pong');
      assert.equal(String((await once(cli, 'data'))[0]), 'pong');
      cli.end();
      srv.end();
      assert.equal((await result).outcome, 'ok');
      // Each loop thread sets its ring up as it starts (the inline engine's: its offload threads).
      const expected = uringExpected() ? (threads === 0 ? DEFAULT_OFFLOAD_THREADS : threads) : 0;
      await waitFor(() => e.stats().ringLoops === expected, 5_000, `${expected} loop thread(s) on io_uring`);
    });

    if (threads === 0) {
      test(`${label}: hot pairs move to the offload thread while the loop is busy; they forward every byte, close and detach there`, async (t) => {
        const e = native();
        // Any pair that reads 256 KiB within a 100 ms window counts as hot, busy or not (the default
        // asks for a busy loop and 4 MiB: a test process cannot make one without flaking).
        e.setOffload(0, 256 * 1024);
        t.after(() => e.setOffload(50, 4 * 1024 * 1024));
        const pair = await harness(t, e);
        // 4 MiB each way in 64 KiB writes spread over ~0.5 s: hot for several windows.
        const pump = async (s: net.Socket, data: Buffer) => {
          for (let off = 0; off < data.length; off += 64 * 1024) {
            if (!s.write(data.subarray(off, off + 64 * 1024))) await once(s, 'drain');
            await new Promise((r) => setTimeout(r, 8));
          }
        };
        const group = async () => {
          const pairs = [];
          for (let i = 0; i < 4; i++) pairs.push(await pair()); // one at a time: the harness pairs them in order
          const before = e.stats().offloaded;
          return { pairs, before };
        };

        // 1. Forwarding: 4 hot pairs, so (hot > offloaded + 1) at least 2 move; every byte arrives.
        const g1 = await group();
        const flows = g1.pairs.map(({ cli, srv }) => {
          const up = randomBytes(4 * 1024 * 1024);
          const down = randomBytes(4 * 1024 * 1024);
          const atSrv = collect(srv);
          const atCli = collect(cli);
          return { up, down, atSrv, atCli, writing: Promise.all([pump(cli, up).then(() => cli.end()), pump(srv, down).then(() => srv.end())]) };
        });
        await waitFor(() => e.stats().offloaded - g1.before >= 2, 20_000, 'two pairs moved');
        for (const [i, f] of flows.entries()) {
          await f.writing;
          const [s, c] = await Promise.all([f.atSrv, f.atCli]);
          assert.ok(s.data.equals(f.up) && c.data.equals(f.down), `pair ${i}: every byte, in order`);
          const r = await g1.pairs[i]!.result;
          assert.deepEqual([r.outcome, r.bytesIn, r.bytesOut], ['ok', f.up.length, f.down.length]);
          assert.equal(g1.pairs[i]!.reports(), 1);
        }

        // 2. Close by handle, and 3. detach, of pairs some of which live on the offload thread.
        for (const how of ['close', 'detach'] as const) {
          const g = await group();
          const stop = new AbortController();
          const streams = g.pairs.map(({ cli, srv }) => {
            srv.resume();
            cli.resume();
            return (async () => {
              const chunk = randomBytes(64 * 1024);
              while (!stop.signal.aborted && !cli.destroyed) {
                if (!cli.write(chunk)) await Promise.race([once(cli, 'drain'), once(cli, 'close')]);
                await new Promise((r) => setTimeout(r, 8));
              }
            })();
          });
          await waitFor(() => e.stats().offloaded - g.before >= 2, 20_000, `two pairs moved (${how})`);
          if (how === 'close') {
            for (const p of g.pairs) p.handle.close();
            for (const [i, p] of g.pairs.entries()) assert.equal((await p.result).outcome, 'drained', `pair ${i}`);
          } else {
            const answers = await Promise.all(g.pairs.map((p) => p.handle.detach!()));
            for (const [i, a] of answers.entries()) {
              assert.ok(a.ok, `pair ${i} detached`);
              if (a.ok) {
                closeSync(a.pair.clientFd);
                closeSync(a.pair.upstreamFd);
              }
            }
          }
          stop.abort();
          await Promise.all(streams);
          for (const p of g.pairs) {
            p.cli.destroy();
            p.srv.destroy();
          }
        }
        await waitFor(() => e.stats().pairs === 0, 20_000, 'every pair gone');
        for (const p of g1.pairs) assert.equal(p.reports(), 1);
      });
    }

    if (threads === 0) {
      test(`${label}: a keep-alive pair (it lived a 100 ms window, then moved bytes) moves to the offload thread and forwards every exchange there; a silent one stays`, async (t) => {
        const e = native();
        const pair = await harness(t, e);
        const before = e.stats().offloaded;
        const silent = await pair();
        const chatty = await pair();
        chatty.srv.on('data', (d: Buffer) => chatty.srv.write(d)); // an echo server: one reply per request
        let sent = 0;
        const exchange = async (i: number) => {
          const req = Buffer.alloc(100 + (i % 50), i & 0xff);
          const reply = new Promise<Buffer>((resolve) => {
            const parts: Buffer[] = [];
            const onData = (d: Buffer) => {
              parts.push(d);
              if (Buffer.concat(parts).length >= req.length) {
                chatty.cli.off('data', onData);
                resolve(Buffer.concat(parts));
              }
            };
            chatty.cli.on('data', onData);
          });
          chatty.cli.write(req);
          sent += req.length;
          assert.ok((await reply).equals(req), `exchange ${i}: the reply is the request`);
        };
        // Exchanges 10 ms apart until the pair has moved (bounded: 20 s), then 20 more on the thread.
        let i = 0;
        for (const deadline = Date.now() + 20_000; e.stats().offloaded === before && Date.now() < deadline; i++) {
          await exchange(i);
          await new Promise((r) => setTimeout(r, 10));
        }
        assert.equal(e.stats().offloaded - before, 1, 'the chatty pair moved, the silent one did not');
        for (let k = 0; k < 20; k++) await exchange(i + k);
        chatty.cli.end();
        chatty.srv.end();
        const r = await chatty.result;
        assert.deepEqual([r.outcome, r.bytesIn, r.bytesOut], ['ok', sent, sent]);
        assert.equal(chatty.reports(), 1);
        assert.equal(e.stats().offloaded - before, 1, 'still only the chatty pair');
        silent.cli.end();
        silent.srv.end();
        assert.equal((await silent.result).outcome, 'ok');
        await waitFor(() => e.stats().pairs === 0, 20_000, 'every pair gone');
      });
    }

    if (threads === 0) {
      test(`${label}: keep-alive pairs already on the offload thread do not hold hot pairs back (they still share the two threads)`, async (t) => {
        const e = native();
        e.setOffload(0, 256 * 1024); // hot: 256 KiB in a window, busy or not (see the test above)
        t.after(() => e.setOffload(50, 4 * 1024 * 1024));
        const pair = await harness(t, e);
        // 3 chatty pairs, one small echoed exchange every 10 ms until all three have moved (bounded).
        const before = e.stats().offloaded;
        const chatty = [await pair(), await pair(), await pair()];
        for (const c of chatty) c.srv.on('data', (d: Buffer) => c.srv.write(d));
        for (const c of chatty) c.cli.on('data', () => {});
        for (const deadline = Date.now() + 20_000; e.stats().offloaded - before < 3 && Date.now() < deadline; ) {
          for (const c of chatty) c.cli.write('ping');
          await new Promise((r) => setTimeout(r, 10));
        }
        assert.equal(e.stats().offloaded - before, 3, 'the three keep-alive pairs moved');
        // 4 hot pairs: with 3 pairs counted as "already there", (hot > there + 1) would move none.
        const hot = [await pair(), await pair(), await pair(), await pair()];
        const mid = e.stats().offloaded;
        const flows = hot.map(({ cli, srv }) => {
          const up = randomBytes(4 * 1024 * 1024);
          const atSrv = collect(srv);
          const writing = (async () => {
            for (let off = 0; off < up.length; off += 64 * 1024) {
              if (!cli.write(up.subarray(off, off + 64 * 1024))) await once(cli, 'drain');
              await new Promise((r) => setTimeout(r, 8));
            }
            cli.end();
            srv.end();
          })();
          return { up, atSrv, writing };
        });
        await waitFor(() => e.stats().offloaded - mid >= 2, 20_000, 'two hot pairs moved');
        for (const [i, f] of flows.entries()) {
          await f.writing;
          assert.ok((await f.atSrv).data.equals(f.up), `hot pair ${i}: every byte, in order`);
          assert.equal((await hot[i]!.result).outcome, 'ok');
        }
        for (const c of chatty) {
          c.cli.end();
          c.srv.end();
          assert.equal((await c.result).outcome, 'ok');
        }
        await waitFor(() => e.stats().pairs === 0, 20_000, 'every pair gone');
      });
    }

    test(`${label}: accept4 out of descriptors is reported to the listener's sink (EMFILE), not only waited out`, async (t) => {
      // The child keeps every accepted fd under nofile=64 until the engine's accept4 fails.
      const fixture = new URL('./fixtures/accept-emfile.ts', import.meta.url).pathname;
      const child = spawn('prlimit', ['--nofile=64:64', process.execPath, fixture, String(threads)], { stdio: ['ignore', 'pipe', 'inherit'] });
      t.after(() => child.kill('SIGKILL'));
      const lines: Record<string, unknown>[] = [];
      const next = (event: string) => waitFor(() => lines.find((l) => l.event === event), 20_000, event);
      createInterface({ input: child.stdout! }).on('line', (line) => lines.push(JSON.parse(line) as Record<string, unknown>));
      const ready = await next('ready');
      const clients: net.Socket[] = [];
      t.after(() => clients.forEach((c) => c.destroy()));
      for (let i = 0; i < 80 && lines.every((l) => l.event !== 'accept-failed'); i++) {
        const c = netConnect(ready.port as number, '127.0.0.1');
        c.on('error', () => {});
        clients.push(c);
        await once(c, 'connect').catch(() => {});
      }
      const failed = await next('accept-failed');
      assert.equal(failed.code, 'EMFILE');
      assert.ok((failed.held as number) > 0, 'some were accepted before the limit');
    });

    test(`${label}: a listener forwards with it (FPROXY_ENGINE unset) and counts the bytes it moved`, { skip: process.env.FPROXY_ENGINE === 'js' ? 'FPROXY_ENGINE=js' : false }, async (t) => {
      const echo = await startEcho('E');
      t.after(() => echo.close());
      const { listener, port } = await listen(t, makeSpec([`127.0.0.1:${echo.port}`]));
      assert.equal(listener.engine.kind, 'native');
      const r = await exchange(port, 'hello');
      assert.equal(r.reply, 'E:hello');
      await waitFor(() => listener.counters().activeConnections === 0, 20_000, 'session closed');
      assert.deepEqual([listener.counters().bytesIn, listener.counters().bytesOut], [5, 7]);
    });

    if (threads === 0) {
      test(`${label}: the connections it connects are forwarded by it and its offload thread in turn, moved once connected; every byte arrives (setOffload connected=false: all stay)`, async (t) => {
        const e = native();
        const echo = await startEcho('E');
        t.after(() => echo.close());
        const { listener, port } = await listen(t, makeSpec([`127.0.0.1:${echo.port}`]));
        assert.equal(listener.engine.kind, 'native');
        const before = e.stats().offloaded;
        // One after another: whichever loop's turn it is first, 6 connections are 3 and 3.
        for (let i = 0; i < 6; i++) assert.equal((await exchange(port, `hello${i}`)).reply, `E:hello${i}`);
        await waitFor(() => listener.counters().activeConnections === 0, 20_000, 'sessions closed');
        assert.equal(e.stats().offloaded - before, 3, 'every other connection moved once connected');
        assert.deepEqual([listener.counters().bytesIn, listener.counters().bytesOut], [36, 48]);
        e.setOffload(50, 4 * 1024 * 1024, true, false);
        t.after(() => e.setOffload(50, 4 * 1024 * 1024, true, true));
        const mid = e.stats().offloaded;
        for (let i = 0; i < 4; i++) assert.equal((await exchange(port, `stay${i}`)).reply, `E:stay${i}`);
        await waitFor(() => listener.counters().activeConnections === 0, 20_000, 'sessions closed');
        assert.equal(e.stats().offloaded - mid, 0, 'connected=false: forwarded where they were accepted');
      });
    }

    test(`${label}: bytes read before the hand-off (a PROXY header) and after it add up in the counters`, async (t) => {
      const echo = await startEcho();
      t.after(() => echo.close());
      const { listener, port } = await listen(t, makeSpec([`127.0.0.1:${echo.port}`], { acceptProxyProtocol: true }));
      const header = 'PROXY TCP4 10.0.0.1 10.0.0.2 1111 2222\r\n';
      const r = await exchange(port, header + 'payload');
      assert.equal(r.reply, 'payload');
      await waitFor(() => listener.counters().activeConnections === 0, 20_000, 'session closed');
      assert.deepEqual([listener.counters().bytesIn, listener.counters().bytesOut], [header.length + 7, 7]);
    });
  }
}
