import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { sniNameProblem } from './host-name.ts';

describe('sniNameProblem', () => {
  const valid = ['a.example.test', 'A.Example.TEST', '*.example.test', '*.test', 'localhost', 'xn--bcher-kva.example'];
  for (const name of valid) {
    test(`accepts ${name}`, () => assert.equal(sniNameProblem(name), undefined));
  }

  const invalid: [string, RegExp][] = [
    ['*', /would match every name/],
    ['*.', /not a valid host name|ends with a dot/],
    ['a.*.test', /wildcard may only be the whole first label/],
    ['*a.test', /wildcard may only be the whole first label/],
    ['*.*.test', /wildcard may only be the whole first label/],
    ['a.test.', /ends with a dot/],
    ['1.2.3.4', /is an IP address/],
    ['::1', /is an IP address/],
    ['a_b.test', /not a valid host name/],
    ['', /not a valid host name/],
  ];
  for (const [name, reason] of invalid) {
    test(`rejects ${JSON.stringify(name)}`, () => assert.match(sniNameProblem(name) ?? '(accepted)', reason));
  }
});
