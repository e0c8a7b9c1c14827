import { runPoolCases } from './pool.case.ts';

runPoolCases('first', { weighted: false });
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { fixture, pickRaw } from './pool.case.ts';

test('first: active/standby: the first usable target in order takes everything, and gets it back', () => {
  const f = fixture('first', ['a:1', 'b:1', 'c:1']);
  assert.equal(pickRaw(f.pool), 'a:1');
  f.table.applyHealth({ 'a:1': 'down' });
  assert.equal(pickRaw(f.pool), 'b:1');
  f.table.applyHealth({ 'a:1': 'down', 'b:1': 'down' });
  assert.equal(pickRaw(f.pool), 'c:1');
  f.table.applyHealth({ 'a:1': 'up' });
  assert.equal(pickRaw(f.pool), 'a:1');
});
