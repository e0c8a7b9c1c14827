// The native engine against the shared conformance suite, plus what only it can show (buffers
// pooled, pairs counted on the C side), with `threads` engine loop threads (0: the inline loop on
// Node's own thread, the default; 1+: loop threads). Skips, saying why, when the addon is not built.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { detachCase, engineCase, harness, preludeDownCase } from './engine.case.ts';
import { JsEngine } from './js-engine.ts';
import { findAddon, NativeEngine } from './native-engine.ts';
import { exchange, listen, makeSpec, startEcho, waitFor } from '../testing.ts';

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
