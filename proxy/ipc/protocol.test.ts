// The IPC contract at the boundary: every message is validated, and a bad one is described by code
// and path, never thrown.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { IPC_VERSION, parseFromListener, parseToListener } from './protocol.ts';
import { makeSpec } from '../testing.ts';

const spec = makeSpec(['127.0.0.1:9001', '[::1]:9002']);
const start = { v: IPC_VERSION, type: 'start', spec, generation: 2, worker: 0 };

test('valid messages in both directions parse to themselves', () => {
  const toListener = [start, { v: 1, type: 'ping', seq: 4 }, { v: 1, type: 'drain' }];
  for (const msg of toListener) assert.deepEqual(parseToListener(msg), { ok: true, msg });
  const fromListener = [
    { v: 1, type: 'ready', ports: [9000], pid: 12 },
    { v: 1, type: 'failed', error: { code: 'ERR_BIND', message: 'EADDRINUSE' } },
    { v: 1, type: 'pong', seq: 4, activeConnections: 1, targets: [{ target: 'a:1', state: 'ejected', since: 1, lastError: 'ECONNREFUSED', activeConnections: 2 ** 40 }], panic: false },
    { v: 1, type: 'draining', activeConnections: 3 },
    { v: 1, type: 'drained', closedByTimeout: 0 },
    { v: 1, type: 'error', error: { code: 'ERR_IPC_UNKNOWN', message: 'x' } },
  ];
  for (const msg of fromListener) assert.deepEqual(parseFromListener(msg), { ok: true, msg });
});

test('a spec with TLS and routes parses (optional and nested parts)', () => {
  const tlsSpec = makeSpec([], {
    tls: { mode: 'terminate', certs: [{ certPath: '/a.crt', keyPath: '/a.key' }] },
    routes: [{ sni: ['a.example.test', '*.b.test'], alpn: ['h2'], targets: spec.targets }],
  });
  assert.equal(parseToListener({ ...start, spec: tlsSpec }).ok, true);
});

test('unknown messages are ERR_IPC_UNKNOWN, with no type', () => {
  for (const raw of [undefined, null, 'start', 42, [], {}, { hello: 'world' }, { v: 2, type: 'ping', seq: 1 }, { v: 1, type: 'reboot' }, { v: 1, type: 'toString' }, { type: 'ping', seq: 1 }]) {
    const r = parseToListener(raw);
    assert.equal(r.ok, false, JSON.stringify(raw));
    assert.ok(!r.ok && r.type === undefined && r.error.code === 'ERR_IPC_UNKNOWN', JSON.stringify(r));
  }
  const r = parseFromListener({ v: 1, type: 'start', spec });
  assert.ok(!r.ok && r.error.code === 'ERR_IPC_UNKNOWN', 'start is not a listener → daemon message');
});

test('a malformed start is ERR_SPEC_INVALID naming the bad path', () => {
  const cases: [what: string, msg: unknown, path: RegExp][] = [
    ['no spec', { ...start, spec: undefined }, /spec: .*expected object/],
    ['a string port', { ...start, spec: { ...spec, ports: ['80'] } }, /spec\.ports\[0\]: .*expected number/],
    ['a port out of range', { ...start, spec: { ...spec, ports: [70000] } }, /spec\.ports\[0\]: Too big/],
    ['a target without a port', { ...start, spec: { ...spec, targets: [{ raw: 'db', host: 'db' }] } }, /spec\.targets\[0\]\.port: /],
    ['an unknown strategy', { ...start, spec: { ...spec, strategy: 'fastest' } }, /spec\.strategy: /],
    ['a negative timeout', { ...start, spec: { ...spec, drainTimeoutMs: -1 } }, /spec\.drainTimeoutMs: Too small/],
    ['a timeout past Node\'s longest timer', { ...start, spec: { ...spec, idleTimeoutMs: 2 ** 31 } }, /spec\.idleTimeoutMs: Too big/],
    ['an unknown spec key', { ...start, spec: { ...spec, colour: 'red' } }, /spec: Unrecognized key: "colour"/],
    ['a bad TLS mode', { ...start, spec: { ...spec, tls: { mode: 'offload', certs: [] } } }, /spec\.tls\.mode: /],
    ['no generation', { v: 1, type: 'start', spec, worker: 0 }, /generation: /],
  ];
  for (const [what, msg, path] of cases) {
    const r = parseToListener(msg);
    assert.ok(!r.ok, what);
    assert.equal(r.type, 'start', what);
    assert.equal(r.error.code, 'ERR_SPEC_INVALID', what);
    assert.match(r.error.message, /^Invalid "start" IPC message: /, what);
    assert.match(r.error.message, path, what);
  }
});

test('the listener refuses unknown keys; the daemon drops them (a pong is never refused for carrying more)', () => {
  const ping = parseToListener({ v: 1, type: 'ping', seq: 1, extra: true });
  assert.ok(!ping.ok && ping.error.code === 'ERR_IPC_INVALID' && /Unrecognized key: "extra"/.test(ping.error.message));
  const pong = { v: 1, type: 'pong', seq: 4, activeConnections: 0 };
  assert.deepEqual(parseFromListener({ ...pong, later: [1] }), { ok: true, msg: pong });
});

test('other known messages with bad fields are ERR_IPC_INVALID; issues are capped', () => {
  const ping = parseToListener({ v: 1, type: 'ping', seq: 'one' });
  assert.ok(!ping.ok && ping.type === 'ping' && ping.error.code === 'ERR_IPC_INVALID');
  assert.match(ping.error.message, /seq: /);
  const pong = parseFromListener({ v: 1, type: 'pong', seq: 1, targets: [{}, {}, {}] });
  assert.ok(!pong.ok && pong.error.code === 'ERR_IPC_INVALID');
  assert.match(pong.error.message, /activeConnections: .*; targets\[0\]\.target: .*; targets\[0\]\.state: .*; targets\[0\]\.since: .*; targets\[0\]\.lastError: .*; and \d+ more/);
  const many = parseToListener({ ...start, spec: {} });
  assert.ok(!many.ok);
  assert.match(many.error.message, /; and \d+ more$/);
});
