import { test } from 'node:test';
import assert from 'node:assert/strict';
import { Router } from './router.ts';
import type { TargetSpec } from './spec.ts';
import { targetSpec } from './testing.ts';

const t = (raw: string): TargetSpec => targetSpec(raw);
const first = (r: Router, sni: string | undefined, alpn: string[] = []) => {
  const pool = r.pool(sni, alpn);
  const i = pool.pick(undefined, null);
  return i < 0 ? undefined : pool.entries[i]!.state.raw;
};

const router = new Router([t('127.0.0.1:9000')], [
  { sni: ['a.example.test', '*.a.example.test'], alpn: [], targets: [t('127.0.0.1:9001')] },
  { sni: ['*.deep.a.example.test'], alpn: [], targets: [t('127.0.0.1:9002')] },
  { sni: ['b.example.test'], alpn: ['h2'], targets: [t('127.0.0.1:9003')] },
]);

test('routes by SNI: exact, wildcard, most specific wildcard first, case-insensitive', () => {
  assert.equal(first(router, 'a.example.test'), '127.0.0.1:9001');
  assert.equal(first(router, 'x.a.example.test'), '127.0.0.1:9001');
  assert.equal(first(router, 'X.Deep.A.Example.Test'), '127.0.0.1:9002');
  assert.equal(first(router, 'A.EXAMPLE.TEST'), '127.0.0.1:9001');
});

test('a wildcard does not match the bare suffix or another domain', () => {
  const r = new Router([], [{ sni: ['*.a.example.test'], alpn: [], targets: [t('127.0.0.1:9001')] }]);
  assert.equal(first(r, 'a.example.test'), undefined);
  assert.equal(first(r, 'xa.example.test'), undefined);
});

test('no SNI or an unknown name goes to the default pool', () => {
  assert.equal(first(router, undefined), '127.0.0.1:9000');
  assert.equal(first(router, 'unknown.test'), '127.0.0.1:9000');
});

test('an ALPN route needs the client to offer one of its protocols', () => {
  assert.equal(first(router, 'b.example.test', ['http/1.1', 'h2']), '127.0.0.1:9003');
  assert.equal(first(router, 'b.example.test', ['http/1.1']), '127.0.0.1:9000');
});

test('each pool keeps its own round-robin cursor', () => {
  const r = new Router([t('127.0.0.1:1'), t('127.0.0.1:2')], [{ sni: ['a.test'], alpn: [], targets: [t('127.0.0.1:3'), t('127.0.0.1:4')] }]);
  assert.deepEqual([first(r, 'a.test'), first(r, undefined), first(r, 'a.test'), first(r, undefined)], ['127.0.0.1:3', '127.0.0.1:1', '127.0.0.1:4', '127.0.0.1:2']);
});
