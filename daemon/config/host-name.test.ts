import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { sniNameProblem, targetProblem } from './host-name.ts';

describe('targetProblem', () => {
  const valid = ['db:5432', 'db.internal:1', 'db.internal.:65535', 'app_db_1:80', '10.0.0.7:5432', '[::1]:9000', '[2001:db8::7]:443', 'xn--bcher-kva.example:80'];
  for (const raw of valid) {
    test(`accepts ${raw}`, () => assert.equal(targetProblem(raw), undefined));
  }

  const invalid: [string, RegExp][] = [
    ['', /target is empty/],
    ['db', /has no port: write it as "db:PORT"/],
    ['db:', /has no port after ":"/],
    [':80', /has no host/],
    ['db:http', /port "http" is not a number/],
    ['db:0', /port 0 is outside 1–65535/],
    ['db:65536', /port 65536 is outside 1–65535/],
    ['::1:9000', /write IPv6 addresses in brackets, as in "\[::1\]:9000"/],
    ['::1', /has no port: write it as "\[::1\]:PORT"/],
    ['[::1]', /is not "host:port"/],
    ['[1.2.3.4]:80', /brackets are only for IPv6 addresses, write "1\.2\.3\.4:80"/],
    ['[nothex]:80', /brackets are only for IPv6/],
    [' db:80', /has spaces around it/],
    ['bad host:80', /"bad host" is not a valid host name or IP address/],
    ['-db:80', /"-db" is not a valid host name/],
    ['db..internal:80', /not a valid host name/],
    ['999.1.1.1:80', /"999\.1\.1\.1" is not a valid host name or IP address/],
    [`${'a'.repeat(64)}.test:80`, /not a valid host name/],
  ];
  for (const [raw, reason] of invalid) {
    test(`rejects ${JSON.stringify(raw)}`, () => assert.match(targetProblem(raw) ?? '(accepted)', reason));
  }
});

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
