// The access line (debug) names the client for plain connections too, not only behind PROXY
// protocol: the address is read while the socket is open, since a closed socket no longer has one.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { captureLogger, exchange, listen, makeSpec, startEcho, waitFor } from './testing.ts';

test('a plain connection\'s access line has its client address', async (t) => {
  const echo = await startEcho('e');
  t.after(() => echo.close());
  const { logger, lines } = await captureLogger('debug');
  const { port } = await listen(t, makeSpec([`127.0.0.1:${echo.port}`]), logger);
  const hasV6 = (await import('node:os')).networkInterfaces().lo?.some((i) => i.address === '::1') ?? false;
  assert.equal((await exchange(port, 'hi', '127.0.0.1')).reply, 'e:hi');
  if (hasV6) assert.equal((await exchange(port, 'v6', '::1')).reply, 'e:v6');
  const access = () => lines.filter((l) => l.event === 'access');
  await waitFor(() => access().length === (hasV6 ? 2 : 1), 20_000, 'access lines');
  const clients = access().map((l) => l.client);
  // A dual-stack socket reports an IPv4 client as ::ffff:127.0.0.1.
  assert.match(String(clients[0]), /^(::ffff:)?127\.0\.0\.1$/, `client ${String(clients[0])}`);
  if (hasV6) assert.equal(clients[1], '::1');
});

test('a connection refused by every target still logs who it was', async (t) => {
  const { logger, lines } = await captureLogger('debug');
  const { port } = await listen(t, makeSpec(['127.0.0.1:1'], { connectTimeoutMs: 500 }), logger);
  await exchange(port, 'hi', '127.0.0.1');
  await waitFor(() => lines.some((l) => l.event === 'access'), 20_000, 'the access line');
  const line = lines.find((l) => l.event === 'access')!;
  assert.notEqual(line.outcome, 'ok');
  assert.match(String(line.client), /^(::ffff:)?127\.0\.0\.1$/, `client ${String(line.client)}`);
});
