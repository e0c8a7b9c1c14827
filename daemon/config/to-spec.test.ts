import assert from 'node:assert/strict';
import { availableParallelism } from 'node:os';
import { describe, test } from 'node:test';
import { SPEC_DEFAULTS } from '../../proxy/index.ts';
import type { AppConfig, Config } from './schema.ts';
import { defaultWorkers, toListenerSpec, toListenerSpecs } from './to-spec.ts';
import { listenerThreads } from '../../proxy/engine/default-engine.ts';
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
      listen: [],
      targets: [
        { raw: '127.0.0.1:9001', host: '127.0.0.1', port: 9001, weight: 1, backup: false },
        { raw: 'localhost:9002', host: 'localhost', port: 9002, weight: 1, backup: false },
      ],
      strategy: 'round-robin',
      outlierDetection: { consecutiveFailures: 3, ejectMs: 10_000, maxEjectMs: 300_000, maxEjectPercent: 100 },
      onTargetDown: 'keep',
      handOver: true,
      onTargetRemoved: 'keep',
      connectTimeoutMs: 5000,
      connectAttemptTimeoutMs: 2000,
      idleTimeoutMs: 3_600_000,
      drainTimeoutMs: 30_000,
      handshakeTimeoutMs: 5000,
      routes: [],
      acceptProxyProtocol: false,
      sendProxyProtocol: 'none',
      accessLog: false,
      workers: defaultWorkers(availableParallelism(), listenerThreads()),
      healthCheck: null,
      allow: null,
      deny: [],
      maxConnections: 0,
      queueTimeoutMs: 0,
      perSource: null,
      maxConnectionDurationMs: 0,
      firstByteTimeoutMs: 0,
    });
    assert.equal('tls' in spec, false, 'a plain TCP app has no tls key');
  });

  test('maps protection keys; PerSource defaults Burst to RatePerSecond and Prefix6 to 64', () => {
    const spec = toListenerSpec(validApp({
      Name: 'a', Ports: [1], Targets: ['x:1'], Allow: ['10.0.0.0/8'], Deny: ['10.1.0.0/16'], MaxConnections: 100, QueueTimeoutMs: 50,
      PerSource: { MaxConnections: 5, RatePerSecond: 2.5 }, MaxConnectionDurationMs: 1000, FirstByteTimeoutMs: 200,
    }), '/');
    assert.deepEqual(spec.allow, ['10.0.0.0/8']);
    assert.deepEqual(spec.deny, ['10.1.0.0/16']);
    assert.equal(spec.maxConnections, 100);
    assert.equal(spec.queueTimeoutMs, 50);
    assert.deepEqual(spec.perSource, { maxConnections: 5, ratePerSecond: 2.5, burst: 3, prefix6: 64 });
    assert.equal(spec.maxConnectionDurationMs, 1000);
    assert.equal(spec.firstByteTimeoutMs, 200);
  });

  test('the defaults are SPEC_DEFAULTS', () => {
    const spec = toListenerSpec(validApp({ Name: 'a', Ports: [1], Targets: ['x:1'] }), '/');
    for (const [key, value] of Object.entries(SPEC_DEFAULTS)) {
      assert.deepEqual(spec[key as keyof typeof SPEC_DEFAULTS], value, key);
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

  test('maps HealthCheck to healthCheck with its defaults, the timeout capped at the interval', () => {
    const minimal = toListenerSpec(validApp({ Name: 'a', Ports: [1], Targets: ['x:1'], HealthCheck: { IntervalMs: 200 } }), '/');
    assert.deepEqual(minimal.healthCheck, { intervalMs: 200, timeoutMs: 200, rise: 2, fall: 2, port: null, send: null, expect: null, httpPath: null, expectStatus: [] });
    const full = toListenerSpec(validApp({
      Name: 'a', Ports: [1], Targets: ['x:1'],
      HealthCheck: { IntervalMs: 2000, TimeoutMs: 500, Rise: 3, Fall: 1, Port: 8008, HttpPath: '/primary', ExpectStatus: [200] },
    }), '/');
    assert.deepEqual(full.healthCheck, { intervalMs: 2000, timeoutMs: 500, rise: 3, fall: 1, port: 8008, send: null, expect: null, httpPath: '/primary', expectStatus: [200] });
    const sendExpect = toListenerSpec(validApp({ Name: 'a', Ports: [1], Targets: ['x:1'], HealthCheck: { IntervalMs: 5000, Send: 'PING\r\n', Expect: 'PONG' } }), '/');
    assert.equal(sendExpect.healthCheck?.timeoutMs, 1000);
    assert.equal(sendExpect.healthCheck?.send, 'PING\r\n');
    assert.equal(sendExpect.healthCheck?.expect, 'PONG');
  });

  test('parses an IPv6 target without its brackets', () => {
    const spec = toListenerSpec(validApp({ Name: 'a', Ports: [1], Targets: ['[::1]:9000'] }), '/');
    assert.deepEqual(spec.targets, [{ raw: '[::1]:9000', host: '::1', port: 9000, weight: 1, backup: false }]);
  });

  test('maps target objects (MaxConnections too), Strategy, OutlierDetection and OnTargetDown', () => {
    const spec = toListenerSpec(validApp({
      Name: 'a', Ports: [1], Strategy: 'least-connections', OnTargetDown: 'close',
      Targets: ['x:1', { Address: 'y:2', Weight: 3, MaxConnections: 100 }, { Address: '[::1]:3', Backup: true }],
      OutlierDetection: { ConsecutiveFailures: 5, EjectMs: 400_000 },
    }), '/');
    // MaxConnections absent = no limit (no key at all: such a pool keeps its unlimited path).
    assert.deepEqual(spec.targets, [
      { raw: 'x:1', host: 'x', port: 1, weight: 1, backup: false },
      { raw: 'y:2', host: 'y', port: 2, weight: 3, backup: false, maxConnections: 100 },
      { raw: '[::1]:3', host: '::1', port: 3, weight: 1, backup: true },
    ]);
    assert.equal(spec.strategy, 'least-connections');
    assert.equal(spec.onTargetDown, 'close');
    // MaxEjectMs defaults to 300000, but never below EjectMs.
    assert.deepEqual(spec.outlierDetection, { consecutiveFailures: 5, ejectMs: 400_000, maxEjectMs: 400_000, maxEjectPercent: 100 });
    assert.equal(toListenerSpec(validApp({ Name: 'b', Ports: [2], Targets: ['x:1'], OutlierDetection: false }), '/').outlierDetection, null);
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
      { sni: ['a.example.test', '*.b.example.test'], alpn: ['h2'], targets: [{ raw: 'a:1', host: 'a', port: 1, weight: 1, backup: false }] },
      { sni: ['c.example.test'], alpn: [], targets: [{ raw: '[::1]:2', host: '::1', port: 2, weight: 1, backup: false }] },
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

test('Listen becomes the spec\'s bind addresses, in order', () => {
  const app = { Name: 'local', Ports: [7001], Targets: ['127.0.0.1:9001'], Listen: ['127.0.0.1', '::1'] };
  assert.deepEqual(toListenerSpec(app, '/etc/fproxy').listen, ['127.0.0.1', '::1']);
});

test('Workers defaults to one listener process per core it can use: cores ÷ the threads each listener forwards on', () => {
  assert.equal(defaultWorkers(2, 2), 1, 'native engine, 2 cores: one process (Node\'s thread and the offload thread)');
  assert.equal(defaultWorkers(8, 2), 4);
  assert.equal(defaultWorkers(3, 2), 2, 'an odd core is not left idle');
  assert.equal(defaultWorkers(1, 2), 1);
  assert.equal(defaultWorkers(8, 1), 8, 'JS engine: one per core, as before');
  assert.equal(defaultWorkers(8, 4), 2, 'FPROXY_ENGINE_THREADS=4');
  assert.equal(defaultWorkers(512, 1), 64, 'never above the schema\'s bound');
});

test('listenerThreads: 2 for the native inline engine, its loop threads for a threaded one, 1 for JS or no addon', () => {
  const addon = { FPROXY_ENGINE_ADDON: '/any/forwarder.node' };
  assert.equal(listenerThreads({ ...addon }), 2, 'Node\'s thread and the offload thread');
  assert.equal(listenerThreads({ ...addon, FPROXY_ENGINE_OFFLOAD_THREADS: '3' }), 4);
  assert.equal(listenerThreads({ ...addon, FPROXY_ENGINE_OFFLOAD_THREADS: '0' }), 1, 'out of range: the JS engine');
  assert.equal(listenerThreads({ ...addon, FPROXY_ENGINE_THREADS: '3' }), 3);
  assert.equal(listenerThreads({ ...addon, FPROXY_ENGINE: 'js' }), 1);
  assert.equal(listenerThreads({ ...addon, FPROXY_ENGINE_THREADS: 'lots' }), 1, 'a bad value: the JS engine, as defaultEngine does');
});
