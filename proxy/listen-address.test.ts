// Listen: an app's ports bind only on the addresses its spec lists; with none, on every interface.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { networkInterfaces } from 'node:os';
import { Listener, ListenerError } from './listener.ts';
import { createLogger } from './log.ts';
import { exchange, listen, makeSpec, startEcho } from './testing.ts';

const logger = createLogger({ proc: 'test' }, 'silent');
const addresses = new Set(Object.values(networkInterfaces()).flat().map((i) => i?.address));
const hasV6Loopback = addresses.has('::1');

test('an app bound to 127.0.0.1 answers there and is refused on 127.0.0.2 and ::1', async (t) => {
  const echo = await startEcho('e');
  t.after(() => echo.close());
  const { port } = await listen(t, makeSpec([`127.0.0.1:${echo.port}`], { listen: ['127.0.0.1'] }));
  assert.equal((await exchange(port, 'hi', '127.0.0.1')).reply, 'e:hi');
  // 127.0.0.2 is a local address too (all of 127/8 is loopback), but not the one bound.
  assert.equal((await exchange(port, 'hi', '127.0.0.2')).error?.code, 'ECONNREFUSED');
  if (hasV6Loopback) assert.equal((await exchange(port, 'hi', '::1')).error?.code, 'ECONNREFUSED');
});

test('an app with no Listen answers on every local address, as before', async (t) => {
  const echo = await startEcho('e');
  t.after(() => echo.close());
  const { port } = await listen(t, makeSpec([`127.0.0.1:${echo.port}`]));
  assert.equal((await exchange(port, 'a', '127.0.0.1')).reply, 'e:a');
  assert.equal((await exchange(port, 'b', '127.0.0.2')).reply, 'e:b');
  if (hasV6Loopback) assert.equal((await exchange(port, 'c', '::1')).reply, 'e:c');
});

test('an empty listen list is every interface too', async (t) => {
  const echo = await startEcho('e');
  t.after(() => echo.close());
  const { port } = await listen(t, makeSpec([`127.0.0.1:${echo.port}`], { listen: [] }));
  assert.equal((await exchange(port, 'b', '127.0.0.2')).reply, 'e:b');
});

test('two addresses bind every port on both, on the same port numbers', { skip: hasV6Loopback ? false : 'no ::1 on this machine' }, async (t) => {
  const echo = await startEcho('e');
  t.after(() => echo.close());
  const listener = new Listener(makeSpec([`127.0.0.1:${echo.port}`], { ports: [0, 0], listen: ['127.0.0.1', '::1'] }), { logger });
  const ports = await listener.start();
  t.after(() => listener.drain(0));
  assert.equal(ports.length, 2);
  for (const port of ports) {
    assert.equal((await exchange(port, 'v4', '127.0.0.1')).reply, 'e:v4');
    assert.equal((await exchange(port, 'v6', '::1')).reply, 'e:v6');
    assert.equal((await exchange(port, 'no', '127.0.0.2')).error?.code, 'ECONNREFUSED');
  }
});

test('an address the machine does not have fails the start with ERR_BIND EADDRNOTAVAIL naming it', async (t) => {
  // TEST-NET-2 (RFC 5737): never assigned to a real host; pick one this machine lacks.
  const missing = ['198.51.100.7', '198.51.100.8', '198.51.100.9'].find((a) => !addresses.has(a))!;
  const echo = await startEcho('e');
  t.after(() => echo.close());
  const listener = new Listener(makeSpec([`127.0.0.1:${echo.port}`], { listen: ['127.0.0.1', missing] }), { logger });
  await assert.rejects(listener.start(), (err: unknown) => {
    assert.ok(err instanceof ListenerError);
    assert.equal(err.code, 'ERR_BIND');
    assert.match(err.message, new RegExp(`on ${missing.replaceAll('.', '\\.')}: EADDRNOTAVAIL \\(this machine has no address ${missing.replaceAll('.', '\\.')}`));
    return true;
  });
  await listener.drain(0);
});
