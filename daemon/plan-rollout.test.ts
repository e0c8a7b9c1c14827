import { test } from 'node:test';
import assert from 'node:assert/strict';
import type { ListenerSpec } from '../proxy/index.ts';
import { SPEC_DEFAULTS } from '../proxy/index.ts';
import { canonicalJson, planRollout } from './plan-rollout.ts';

function spec(app: string, ports: number[], targets: string[], extra: Partial<ListenerSpec> = {}): ListenerSpec {
  return {
    ...SPEC_DEFAULTS,
    app,
    ports,
    targets: targets.map((raw) => ({ raw, host: raw.split(':')[0]!, port: Number(raw.split(':')[1]) })),
    routes: [],
    workers: 1,
    ...extra,
  };
}

function specs(...list: ListenerSpec[]): Map<string, ListenerSpec> {
  return new Map(list.map((s) => [s.app, s]));
}

const a = spec('a', [5001], ['127.0.0.1:9001']);
const b = spec('b', [6001], ['127.0.0.1:9002']);
const c = spec('c', [7001], ['127.0.0.1:9003']);

test('planRollout sorts every app into exactly one list', () => {
  const table: { name: string; prev: Map<string, ListenerSpec>; next: Map<string, ListenerSpec>; want: ReturnType<typeof planRollout> }[] = [
    { name: 'nothing to nothing', prev: specs(), next: specs(), want: { start: [], stop: [], rollout: [], unchanged: [] } },
    { name: 'first config starts all', prev: specs(), next: specs(b, a), want: { start: ['a', 'b'], stop: [], rollout: [], unchanged: [] } },
    { name: 'empty config stops all', prev: specs(a, b), next: specs(), want: { start: [], stop: ['a', 'b'], rollout: [], unchanged: [] } },
    { name: 'same specs are unchanged', prev: specs(a, b), next: specs(a, b), want: { start: [], stop: [], rollout: [], unchanged: ['a', 'b'] } },
    {
      name: 'target change rolls out only that app',
      prev: specs(a, b),
      next: specs(spec('a', [5001], ['127.0.0.1:9009']), b),
      want: { start: [], stop: [], rollout: ['a'], unchanged: ['b'] },
    },
    {
      name: 'port added rolls out',
      prev: specs(a),
      next: specs(spec('a', [5001, 5002], ['127.0.0.1:9001'])),
      want: { start: [], stop: [], rollout: ['a'], unchanged: [] },
    },
    {
      name: 'a timeout change rolls out',
      prev: specs(a),
      next: specs(spec('a', [5001], ['127.0.0.1:9001'], { drainTimeoutMs: 1 })),
      want: { start: [], stop: [], rollout: ['a'], unchanged: [] },
    },
    {
      name: 'worker count change rolls out',
      prev: specs(a),
      next: specs(spec('a', [5001], ['127.0.0.1:9001'], { workers: 4 })),
      want: { start: [], stop: [], rollout: ['a'], unchanged: [] },
    },
    {
      name: 'mixed: remove a, change b, add c',
      prev: specs(a, b),
      next: specs(spec('b', [6001, 6002], ['127.0.0.1:9002']), c),
      want: { start: ['c'], stop: ['a'], rollout: ['b'], unchanged: [] },
    },
    {
      name: 'rename is a stop plus a start',
      prev: specs(a),
      next: specs({ ...a, app: 'a2' }),
      want: { start: ['a2'], stop: ['a'], rollout: [], unchanged: [] },
    },
  ];
  for (const { name, prev, next, want } of table) assert.deepEqual(planRollout(prev, next), want, name);
});

test('spec equality ignores key order but not array order', () => {
  const reordered = Object.fromEntries(Object.entries(a).reverse()) as unknown as ListenerSpec;
  assert.deepEqual(planRollout(specs(a), specs(reordered)).unchanged, ['a']);
  const swapped = spec('a', [5002, 5001], ['127.0.0.1:9001']);
  const two = spec('a', [5001, 5002], ['127.0.0.1:9001']);
  assert.deepEqual(planRollout(specs(two), specs(swapped)).rollout, ['a']);
});

test('canonicalJson sorts keys at every depth and drops undefined fields', () => {
  const table: [value: unknown, json: string][] = [
    [{ b: 1, a: 2 }, '{"a":2,"b":1}'],
    [{ z: { y: 1, x: [{ d: 1, c: 2 }] } }, '{"z":{"x":[{"c":2,"d":1}],"y":1}}'],
    [{ a: undefined, b: null }, '{"b":null}'],
    [[3, 1, 2], '[3,1,2]'],
    ['s', '"s"'],
  ];
  for (const [value, json] of table) assert.equal(canonicalJson(value), json);
});
