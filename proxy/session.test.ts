// One session per outcome, end to end: real clients and targets; the closed Session says how it
// ended (outcome and code, both written only by Session.fail()).
import { test } from 'node:test';
import assert from 'node:assert/strict';
import net from 'node:net';
import { once } from 'node:events';
import { Listener } from './listener.ts';
import { createLogger } from './log.ts';
import type { NativeSession } from './native-session.ts';
import type { Session } from './session.ts';
import type { ListenerSpec } from './spec.ts';
import { closedPort, exchange, makeSpec, startEcho, tlsExchange, waitFor } from './testing.ts';

class RecordingListener extends Listener {
  /** Either path's connection: a Session, or a NativeSession (plain TCP on the native engine). */
  readonly closed: { readonly outcome: string; readonly code: string | undefined }[] = [];
  override onSessionClosed(s: Session): void {
    this.closed.push(s);
    super.onSessionClosed(s);
  }
  override onNativeClosed(s: NativeSession): void {
    this.closed.push(s);
    super.onNativeClosed(s);
  }
}

async function start(t: { after: (fn: () => unknown) => void }, spec: ListenerSpec): Promise<{ listener: RecordingListener; port: number }> {
  const listener = new RecordingListener(spec, { logger: createLogger({ proc: 'test' }, 'silent') });
  const [port] = await listener.start();
  t.after(() => listener.drain(0));
  return { listener, port: port! };
}

async function ended(listener: RecordingListener): Promise<{ outcome: string; code: string | undefined }> {
  await waitFor(() => listener.closed.length > 0, 20_000, 'the session to close');
  const s = listener.closed[0]!;
  return { outcome: s.outcome, code: s.code };
}

/** A target that resets every connection once it has read something. */
async function startResetter(t: { after: (fn: () => unknown) => void }): Promise<number> {
  const server = net.createServer((s) => {
    s.on('error', () => {});
    s.once('data', () => s.resetAndDestroy());
  });
  server.listen(0, '127.0.0.1');
  await once(server, 'listening');
  t.after(() => new Promise<void>((r) => server.close(() => r())));
  return (server.address() as net.AddressInfo).port;
}

test('ok: bytes both ways, both sides closed; no code', async (t) => {
  const echo = await startEcho();
  t.after(() => echo.close());
  const { listener, port } = await start(t, makeSpec([`127.0.0.1:${echo.port}`]));
  assert.equal((await exchange(port, 'hi')).reply, 'hi');
  assert.deepEqual(await ended(listener), { outcome: 'ok', code: undefined });
});

test('connect-failed: no target answers', async (t) => {
  const { listener, port } = await start(t, makeSpec([`127.0.0.1:${await closedPort(t)}`]));
  await exchange(port, 'hi');
  assert.deepEqual(await ended(listener), { outcome: 'connect-failed', code: 'ERR_CONNECT_EXHAUSTED' });
});

test('no-route: a TLS name no route takes, and no default pool', async (t) => {
  const { listener, port } = await start(t, makeSpec([], { tls: { mode: 'passthrough', certs: [] }, routes: [{ sni: ['a.test'], alpn: [], targets: [{ raw: '127.0.0.1:1', host: '127.0.0.1', port: 1 }] }] }));
  await tlsExchange(port, 'hi', { servername: 'other.test' });
  assert.deepEqual(await ended(listener), { outcome: 'no-route', code: 'ERR_NO_ROUTE' });
});

test('handshake-timeout: no PROXY header in time', async (t) => {
  const { listener, port } = await start(t, makeSpec(['127.0.0.1:1'], { acceptProxyProtocol: true, handshakeTimeoutMs: 200 }));
  const c = net.connect(port, '127.0.0.1');
  c.on('error', () => {});
  t.after(() => c.destroy());
  assert.deepEqual(await ended(listener), { outcome: 'handshake-timeout', code: 'ERR_HANDSHAKE_TIMEOUT' });
});

test('bad-handshake: bytes that cannot start a PROXY header', async (t) => {
  const { listener, port } = await start(t, makeSpec(['127.0.0.1:1'], { acceptProxyProtocol: true }));
  await exchange(port, 'GET / HTTP/1.1\r\n\r\n');
  const e = await ended(listener);
  assert.equal(e.outcome, 'bad-handshake');
  assert.match(e.code ?? '', /^ERR_PROXY_/);
});

test('client-error: the client resets mid-connection', async (t) => {
  const echo = await startEcho();
  t.after(() => echo.close());
  const { listener, port } = await start(t, makeSpec([`127.0.0.1:${echo.port}`]));
  const c = net.connect(port, '127.0.0.1');
  await once(c, 'connect');
  c.write('x');
  await once(c, 'data');
  c.resetAndDestroy();
  assert.deepEqual(await ended(listener), { outcome: 'client-error', code: 'ECONNRESET' });
});

test('upstream-error: the target resets', async (t) => {
  const { listener, port } = await start(t, makeSpec([`127.0.0.1:${await startResetter(t)}`]));
  await exchange(port, 'x');
  assert.deepEqual(await ended(listener), { outcome: 'upstream-error', code: 'ECONNRESET' });
});

test('idle-timeout: no bytes either way for IdleTimeoutMs', async (t) => {
  const echo = await startEcho();
  t.after(() => echo.close());
  const { listener, port } = await start(t, makeSpec([`127.0.0.1:${echo.port}`], { idleTimeoutMs: 200 }));
  const c = net.connect(port, '127.0.0.1');
  c.on('error', () => {});
  t.after(() => c.destroy());
  assert.deepEqual(await ended(listener), { outcome: 'idle-timeout', code: 'ERR_IDLE_TIMEOUT' });
});

test('drained: still open when the drain timeout ends (the only outcome with ERR_DRAINED)', async (t) => {
  const echo = await startEcho();
  t.after(() => echo.close());
  const listener = new RecordingListener(makeSpec([`127.0.0.1:${echo.port}`]), { logger: createLogger({ proc: 'test' }, 'silent') });
  const [port] = await listener.start();
  const c = net.connect(port!, '127.0.0.1');
  c.on('error', () => {});
  t.after(() => c.destroy());
  c.write('x');
  await once(c, 'data');
  assert.deepEqual(await listener.drain(50), { closedByTimeout: 1 });
  assert.deepEqual(await ended(listener), { outcome: 'drained', code: 'ERR_DRAINED' });
});

test('target marked down with OnTargetDown "close": reset, ERR_TARGET_DOWN', async (t) => {
  const echo = await startEcho();
  t.after(() => echo.close());
  const target = `127.0.0.1:${echo.port}`;
  const { listener, port } = await start(t, makeSpec([target], { onTargetDown: 'close' }));
  const c = net.connect(port, '127.0.0.1');
  c.on('error', () => {});
  t.after(() => c.destroy());
  c.write('x');
  await once(c, 'data');
  listener.applyHealth({ [target]: 'down' });
  assert.deepEqual(await ended(listener), { outcome: 'upstream-error', code: 'ERR_TARGET_DOWN' });
  assert.equal(listener.targetsReport().targets[0]!.activeConnections, 0, 'the target\'s count is released at close');
});
