import assert from 'node:assert/strict';
import { availableParallelism } from 'node:os';
import { describe, test } from 'node:test';
import { SPEC_DEFAULTS } from '../../proxy/spec.ts';
import type { AppConfig, Config } from './schema.ts';
import { toListenerSpec, toListenerSpecs } from './to-spec.ts';
import { validateConfig } from './validate.ts';

function validApp(app: Record<string, unknown>): AppConfig {
  const result = validateConfig({ Apps: [app] });
  if (!result.ok) assert.fail(JSON.stringify(result.issues));
  const first = result.config.Apps[0];
  assert.ok(first);
  return first;
}

describe('toListenerSpec', () => {
  test('applies every default to a minimal app', () => {
    const spec = toListenerSpec(validApp({ Name: 'five-thousand', Ports: [5001, 5200], Targets: ['127.0.0.1:9001', 'localhost:9002'] }), '/etc/fproxy');
    assert.deepEqual(spec, {
      app: 'five-thousand',
      ports: [5001, 5200],
      targets: [
        { raw: '127.0.0.1:9001', host: '127.0.0.1', port: 9001 },
        { raw: 'localhost:9002', host: 'localhost', port: 9002 },
      ],
      strategy: 'round-robin',
      connectTimeoutMs: 5000,
      connectAttemptTimeoutMs: 2000,
      idleTimeoutMs: 3_600_000,
      drainTimeoutMs: 30_000,
      handshakeTimeoutMs: 5000,
      routes: [],
      acceptProxyProtocol: false,
      sendProxyProtocol: 'none',
      accessLog: false,
      workers: Math.min(64, availableParallelism()),
    });
    assert.equal('tls' in spec, false, 'a plain TCP app has no tls key');
  });

  test('the defaults are SPEC_DEFAULTS', () => {
    const spec = toListenerSpec(validApp({ Name: 'a', Ports: [1], Targets: ['x:1'] }), '/');
    for (const [key, value] of Object.entries(SPEC_DEFAULTS)) {
      assert.equal(spec[key as keyof typeof SPEC_DEFAULTS], value, key);
    }
  });

  test('keeps explicit values, 0 included', () => {
    const spec = toListenerSpec(validApp({
      Name: 'a', Ports: [1], Targets: ['x:1'],
      ConnectTimeoutMs: 900, ConnectAttemptTimeoutMs: 300, IdleTimeoutMs: 0, DrainTimeoutMs: 0, HandshakeTimeoutMs: 250,
      Workers: 3, AcceptProxyProtocol: true, SendProxyProtocol: 'v1',
    }), '/');
    assert.equal(spec.connectTimeoutMs, 900);
    assert.equal(spec.connectAttemptTimeoutMs, 300);
    assert.equal(spec.idleTimeoutMs, 0);
    assert.equal(spec.drainTimeoutMs, 0);
    assert.equal(spec.handshakeTimeoutMs, 250);
    assert.equal(spec.workers, 3);
    assert.equal(spec.acceptProxyProtocol, true);
    assert.equal(spec.sendProxyProtocol, 'v1');
  });

  test('parses an IPv6 target without its brackets', () => {
    const spec = toListenerSpec(validApp({ Name: 'a', Ports: [1], Targets: ['[::1]:9000'] }), '/');
    assert.deepEqual(spec.targets, [{ raw: '[::1]:9000', host: '::1', port: 9000 }]);
  });

  test('lower-cases SNI names, defaults ALPN to any, and resolves cert paths against the config directory', () => {
    const spec = toListenerSpec(validApp({
      Name: 'tls', Ports: [443],
      Tls: { Mode: 'terminate', Certs: [{ Cert: 'certs/a.pem', Key: '/abs/a-key.pem' }] },
      Routes: [
        { Sni: ['A.Example.Test', '*.B.example.test'], Alpn: ['h2'], Targets: ['a:1'] },
        { Sni: ['c.example.test'], Targets: ['[::1]:2'] },
      ],
    }), '/etc/fproxy');
    assert.deepEqual(spec.tls, { mode: 'terminate', certs: [{ certPath: '/etc/fproxy/certs/a.pem', keyPath: '/abs/a-key.pem' }] });
    assert.deepEqual(spec.targets, [], 'a routes-only app has an empty default pool');
    assert.deepEqual(spec.routes, [
      { sni: ['a.example.test', '*.b.example.test'], alpn: ['h2'], targets: [{ raw: 'a:1', host: 'a', port: 1 }] },
      { sni: ['c.example.test'], alpn: [], targets: [{ raw: '[::1]:2', host: '::1', port: 2 }] },
    ]);
  });

  test('passthrough has no certs', () => {
    const spec = toListenerSpec(validApp({ Name: 'p', Ports: [443], Targets: ['x:1'], Tls: { Mode: 'passthrough' } }), '/');
    assert.deepEqual(spec.tls, { mode: 'passthrough', certs: [] });
  });

  test('the spec is plain JSON (it crosses the IPC channel as is)', () => {
    const spec = toListenerSpec(validApp({ Name: 'a', Ports: [1], Targets: ['x:1'], Tls: { Mode: 'passthrough' }, Routes: [{ Sni: ['a.test'], Targets: ['y:2'] }] }), '/');
    assert.deepEqual(JSON.parse(JSON.stringify(spec)), spec);
  });
});

test('toListenerSpecs maps every app by name, in config order', () => {
  const result = validateConfig({ Apps: [
    { Name: 'zeta', Ports: [1], Targets: ['x:1'] },
    { Name: 'alpha', Ports: [2], Targets: ['y:2'] },
  ] });
  assert.ok(result.ok);
  const specs = toListenerSpecs(result.config as Config, '/');
  assert.deepEqual([...specs.keys()], ['zeta', 'alpha']);
  assert.deepEqual(specs.get('alpha')?.ports, [2]);
});
