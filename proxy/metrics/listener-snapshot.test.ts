// What a real listener puts in its metrics snapshot: outcomes, attempts per target, the handshake
// histogram for TLS apps only, and the per-target gauge while a connection is open.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import net from 'node:net';
import { once } from 'node:events';
import { closedPort, exchange, listen, makeCert, makeSpec, startEcho, startTlsEcho, tempDir, tlsExchange, waitFor } from '../testing.ts';

const count = (c: readonly number[]) => c.reduce((a, b) => a + b, 0);

test('a plain TCP app: sessions and connects timed, no handshake; refused attempts counted on the dead target', async (t) => {
  const echo = await startEcho('e');
  t.after(() => echo.close());
  const dead = await closedPort(t);
  const { listener, port } = await listen(t, makeSpec([`127.0.0.1:${dead}`, `127.0.0.1:${echo.port}`]));
  for (let i = 0; i < 4; i++) assert.equal((await exchange(port, 'x')).reply, 'e:x');
  await waitFor(() => listener.activeConnections === 0, 20_000, 'sessions closed');
  const s = listener.metricsSnapshot();
  assert.deepEqual(s.connections, { ok: 4 });
  assert.equal(s.attempts[`127.0.0.1:${echo.port}`]?.ok, 4);
  assert.ok((s.attempts[`127.0.0.1:${dead}`]?.refused ?? 0) >= 1);
  assert.equal(count(s.sessionDuration.counts), 4);
  assert.equal(count(s.connectDuration.counts), 4);
  assert.equal(count(s.tlsHandshakeDuration.counts), 0);
  assert.ok(s.connectDuration.sum > 0);
});

test('a passthrough TLS app counts one handshake (ClientHello read) per connection', async (t) => {
  const dir = await tempDir(t);
  const cert = await makeCert(dir, 'a', ['a.example.test']);
  const target = await startTlsEcho('A', cert);
  t.after(() => target.close());
  const { listener, port } = await listen(t, makeSpec([`127.0.0.1:${target.port}`], { tls: { mode: 'passthrough', certs: [] } }));
  for (let i = 0; i < 3; i++) assert.equal((await tlsExchange(port, 'hi', { servername: 'a.example.test' })).reply, 'A:hi');
  await waitFor(() => listener.activeConnections === 0, 20_000, 'sessions closed');
  const s = listener.metricsSnapshot();
  assert.equal(count(s.tlsHandshakeDuration.counts), 3);
  assert.deepEqual(s.connections, { ok: 3 });
});

test('an open connection shows in the per-target gauge, and leaves it when it closes', async (t) => {
  const echo = await startEcho('e');
  t.after(() => echo.close());
  const { listener, port } = await listen(t, makeSpec([`127.0.0.1:${echo.port}`]));
  const c = net.connect(port, '127.0.0.1');
  c.write('x');
  await once(c, 'data');
  const open = listener.metricsSnapshot();
  assert.equal(open.activeConnections, 1);
  assert.deepEqual(open.targetActive, { [`127.0.0.1:${echo.port}`]: 1 });
  c.end();
  await waitFor(() => listener.activeConnections === 0, 20_000, 'session closed');
  assert.deepEqual(listener.metricsSnapshot().targetActive, { [`127.0.0.1:${echo.port}`]: 0 });
  c.destroy();
});
