import { test } from 'node:test';
import assert from 'node:assert/strict';
import { closedPort, runFtest, startServer } from './cli-harness.ts';
import { startEchoServers } from './echo-server.ts';

const TIMES = /^dial \d+(\.\d+)? ms, write \d+(\.\d+)? ms, read \d+(\.\d+)? ms, total \d+(\.\d+)? ms$/m;

test('ping prints the reply and the dial, write, read and total times', async (t) => {
  const servers = await startEchoServers({ ports: [0], tag: true });
  t.after(() => servers.close());
  const port = servers.ports[0]!;
  const result = await runFtest(['ping', `127.0.0.1:${port}`, '-d', 'hello']);
  assert.equal(result.code, 0, result.stderr);
  assert.match(result.stdout, new RegExp(`^reply from 127\\.0\\.0\\.1:${port}: "${port}:hello" \\(\\d+ bytes\\)$`, 'm'));
  assert.match(result.stdout, TIMES);
});

test('ping works over IPv6 and through a hostname', async (t) => {
  const servers = await startEchoServers({ ports: [0] });
  t.after(() => servers.close());
  const port = servers.ports[0]!;
  const [v6, named] = await Promise.all([runFtest(['ping', `[::1]:${port}`]), runFtest(['ping', `localhost:${port}`])]);
  assert.equal(v6.code, 0, v6.stderr);
  assert.match(v6.stdout, new RegExp(`^reply from \\[::1\\]:${port}: "ping"`, 'm'));
  assert.equal(named.code, 0, named.stderr);
  assert.match(named.stdout, /: "ping" \(4 bytes\)/);
});

test('ping to a closed port exits 1 and says refused', async (t) => {
  const port = await closedPort(t);
  const result = await runFtest(['ping', `127.0.0.1:${port}`]);
  assert.equal(result.code, 1);
  assert.match(result.stderr, new RegExp(`connection refused by 127\\.0\\.0\\.1:${port} after \\d`));
  assert.equal(result.stdout, '');
});

test('ping to a server that resets exits 1 and says reset', async (t) => {
  const server = await startServer((socket) => socket.once('data', () => socket.resetAndDestroy()));
  t.after(() => server.close());
  const result = await runFtest(['ping', `127.0.0.1:${server.port}`]);
  assert.equal(result.code, 1);
  assert.match(result.stderr, new RegExp(`connection reset by 127\\.0\\.0\\.1:${server.port} after [\\d.]+ ms`));
});

test('ping to a server that never answers times out and exits 1', async (t) => {
  const server = await startServer(() => {});
  t.after(() => server.close());
  const result = await runFtest(['ping', `127.0.0.1:${server.port}`, '--timeout', '300']);
  assert.equal(result.code, 1);
  assert.match(result.stderr, new RegExp(`timed out after \\d+ ms waiting for the reply from 127\\.0\\.0\\.1:${server.port} \\(nothing received\\)`));
});

test('ping to a server that closes without a reply, or replies wrongly, exits 1', async (t) => {
  const silent = await startServer((socket) => socket.once('data', () => socket.end()));
  t.after(() => silent.close());
  const liar = await startServer((socket) => socket.once('data', () => socket.end('pong')));
  t.after(() => liar.close());
  const [closed, wrong] = await Promise.all([runFtest(['ping', `127.0.0.1:${silent.port}`]), runFtest(['ping', `127.0.0.1:${liar.port}`])]);
  assert.equal(closed.code, 1);
  assert.match(closed.stderr, /connection closed by .* without a reply/);

  assert.equal(wrong.code, 1);
  assert.match(wrong.stderr, /got "pong", expected an echo of "ping"/);
});

test('ping rejects a malformed address before dialling', async () => {
  const result = await runFtest(['ping', '::1:5001']);
  assert.equal(result.code, 1);
  assert.match(result.stderr, /IPv6 addresses in brackets/);
});
