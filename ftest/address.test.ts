import { test } from 'node:test';
import assert from 'node:assert/strict';
import { parseTarget } from './address.ts';
import { parseDuration } from './duration.ts';

test('parseTarget reads IPv4, bracketed IPv6 and hostnames', () => {
  assert.deepEqual(parseTarget('127.0.0.1:5001'), { host: '127.0.0.1', port: 5001, label: '127.0.0.1:5001' });
  assert.deepEqual(parseTarget('[::1]:5001'), { host: '::1', port: 5001, label: '[::1]:5001' });
  assert.deepEqual(parseTarget('localhost:80'), { host: 'localhost', port: 80, label: 'localhost:80' });
});

test('parseTarget rejects malformed addresses with ERR_FTEST_ADDRESS and says what is wrong', () => {
  const cases: [input: string, why: RegExp][] = [
    ['127.0.0.1', /has no port: write it as "127\.0\.0\.1:PORT"/],
    ['::1:5001', /write IPv6 addresses in brackets/],
    ['[::1]5001', /write IPv6 targets as "\[address\]:port"/],
    ['[nothost]:1', /brackets are only for IPv6/],
    [':5001', /has no host/],
    ['host:0', /outside 1–65535/],
    ['host:65536', /outside 1–65535/],
    ['host:http', /port "http" is not a number/],
    ['bad host:1', /"bad host" is not a valid host name/],
  ];
  for (const [input, why] of cases) {
    assert.throws(() => parseTarget(input), (err: Error & { code?: string }) => {
      assert.equal(err.code, 'ERR_FTEST_ADDRESS');
      assert.match(err.message, why);
      assert.match(err.message, new RegExp(input.replace(/[[\]]/g, '\\$&')));
      return true;
    });
  }
});

test('parseDuration takes a unit, seconds by default', () => {
  assert.equal(parseDuration('500ms'), 500);
  assert.equal(parseDuration('10s'), 10_000);
  assert.equal(parseDuration('1.5s'), 1500);
  assert.equal(parseDuration('2m'), 120_000);
  assert.equal(parseDuration('3'), 3000);
  for (const bad of ['', 'ten', '10x', '-1s', '0s']) {
    assert.throws(() => parseDuration(bad), { code: 'ERR_FTEST_OPTION' }, bad);
  }
});
