import { test } from 'node:test';
import assert from 'node:assert/strict';
import { once } from 'node:events';
import net from 'node:net';
import { echoRoundTrip, startServer } from './cli-harness.ts';
import { startEchoServers } from './echo-server.ts';

test('a tagged echo prefixes the reply stream once, however many chunks the client sends', async (t) => {
  const servers = await startEchoServers({ ports: [0], tag: true });
  t.after(() => servers.close());
  const [port] = servers.ports;
  assert.ok(port! > 0);
  const reply = await echoRoundTrip(port!, ['hel', 'lo'], { lockstep: true });
  assert.equal(reply.toString(), `${port}:hello`);
});

test('an untagged echo returns exactly what it got', async (t) => {
  const servers = await startEchoServers({ ports: [0] });
  t.after(() => servers.close());
  const reply = await echoRoundTrip(servers.ports[0]!, ['a', 'b', 'c'], { lockstep: true });
  assert.equal(reply.toString(), 'abc');
});

test('half-close: the client ends right after a large write and still gets every byte, then the end', async (t) => {
  const servers = await startEchoServers({ ports: [0], tag: true });
  t.after(() => servers.close());
  const port = servers.ports[0]!;
  const payload = Buffer.alloc(512 * 1024, 'x'); // larger than socket buffers: exercises backpressure
  const reply = await echoRoundTrip(port, [payload]);
  assert.equal(reply.length, `${port}:`.length + payload.length);
  assert.equal(reply.subarray(0, `${port}:`.length).toString(), `${port}:`);
});

test('by default each port listens on both 127.0.0.1 and ::1, with one tag per port', async (t) => {
  const servers = await startEchoServers({ ports: [0, 0], tag: true });
  t.after(() => servers.close());
  const [a, b] = servers.ports;
  assert.notEqual(a, b);
  assert.deepEqual(servers.addresses, [
    [`127.0.0.1:${a}`, `[::1]:${a}`],
    [`127.0.0.1:${b}`, `[::1]:${b}`],
  ]);
  assert.equal((await echoRoundTrip(a!, ['v4'])).toString(), `${a}:v4`);
  assert.equal((await echoRoundTrip(b!, ['v6'], { host: '::1' })).toString(), `${b}:v6`);
});

test('--host listens on that address only', async (t) => {
  const servers = await startEchoServers({ ports: [0], host: '127.0.0.1' });
  t.after(() => servers.close());
  assert.deepEqual(servers.addresses, [[`127.0.0.1:${servers.ports[0]}`]]);
});

test('close() ends open connections too, so it never waits on a client', async () => {
  const servers = await startEchoServers({ ports: [0] });
  const socket = net.connect({ host: '127.0.0.1', port: servers.ports[0]! });
  socket.on('error', () => {});
  await once(socket, 'connect');
  const closed = once(socket, 'close');
  await servers.close();
  await closed;
});

test('a port in use fails with ERR_FTEST_LISTEN naming the address', async (t) => {
  const busy = await startServer(() => {});
  t.after(() => busy.close());
  await assert.rejects(startEchoServers({ ports: [busy.port], host: '127.0.0.1' }), (err: Error & { code?: string }) => {
    assert.equal(err.code, 'ERR_FTEST_LISTEN');
    assert.match(err.message, new RegExp(`127\\.0\\.0\\.1:${busy.port}: EADDRINUSE`));
    return true;
  });
});
