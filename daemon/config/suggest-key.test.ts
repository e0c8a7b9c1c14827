import assert from 'node:assert/strict';
import { test } from 'node:test';
import { editDistance, suggestKey } from './suggest-key.ts';

const APP_KEYS = ['Name', 'Ports', 'Targets', 'ConnectTimeoutMs', 'ConnectAttemptTimeoutMs', 'IdleTimeoutMs', 'Tls', 'Routes', 'Workers'];

const cases: [string, string | undefined][] = [
  ['targets', 'Targets'],
  ['TARGETS', 'Targets'],
  ['Port', 'Ports'],
  ['Target', 'Targets'],
  ['ConnectTimeout', 'ConnectTimeoutMs'],
  ['IdleTimeoutMS', 'IdleTimeoutMs'],
  ['TLS', 'Tls'],
  ['Worker', 'Workers'],
  ['Route', 'Routes'],
  ['Colour', undefined],
  ['Timeout', undefined],
];
for (const [key, expected] of cases) {
  test(`suggestKey(${key}) → ${expected ?? 'nothing'}`, () => {
    assert.equal(suggestKey(key, APP_KEYS), expected);
  });
}

test('editDistance counts insertions, deletions and substitutions', () => {
  assert.equal(editDistance('', 'abc'), 3);
  assert.equal(editDistance('kitten', 'sitting'), 3);
  assert.equal(editDistance('port', 'ports'), 1);
  assert.equal(editDistance('same', 'same'), 0);
});
