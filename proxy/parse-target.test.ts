// parseTarget: one table of what a target address may be, and the reason given when it is not.
import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { parseTarget } from './parse-target.ts';

describe('parseTarget', () => {
  const valid: [raw: string, host: string, port: number][] = [
    ['db:5432', 'db', 5432],
    ['db.internal:1', 'db.internal', 1],
    ['db.internal.:65535', 'db.internal.', 65535],
    ['app_db_1:80', 'app_db_1', 80],
    ['10.0.0.7:5432', '10.0.0.7', 5432],
    ['127.0.0.1:080', '127.0.0.1', 80],
    ['[::1]:9000', '::1', 9000],
    ['[2001:db8::7]:443', '2001:db8::7', 443],
    ['xn--bcher-kva.example:80', 'xn--bcher-kva.example', 80],
  ];
  for (const [raw, host, port] of valid) {
    test(`accepts ${raw}`, () => assert.deepEqual(parseTarget(raw), { ok: true, target: { raw, host, port } }));
  }

  const invalid: [string, RegExp][] = [
    ['', /target is empty/],
    ['db', /has no port: write it as "db:PORT"/],
    ['db:', /has no port after ":"/],
    [':80', /has no host/],
    ['db:http', /port "http" is not a number/],
    ['db:0', /port 0 is outside 1–65535/],
    ['db:65536', /port 65536 is outside 1–65535/],
    ['db:123456', /port 123456 is outside 1–65535/],
    ['::1:9000', /write IPv6 addresses in brackets, as in "\[::1\]:9000"/],
    ['::1', /has no port: write it as "\[::1\]:PORT"/],
    ['[::1]', /is not "host:port"/],
    ['[::1]9000', /write IPv6 targets as "\[address\]:port"/],
    ['[1.2.3.4]:80', /brackets are only for IPv6 addresses, write "1\.2\.3\.4:80"/],
    ['[nothex]:80', /brackets are only for IPv6/],
    ['[fe80::zz]:80', /brackets are only for IPv6 addresses, as in "\[::1\]:80"/],
    [' db:80', /has spaces around it/],
    ['bad host:80', /"bad host" is not a valid host name or IP address/],
    ['-db:80', /"-db" is not a valid host name/],
    ['db..internal:80', /not a valid host name/],
    ['999.1.1.1:80', /"999\.1\.1\.1" is not a valid host name or IP address/],
    [`${'a'.repeat(64)}.test:80`, /not a valid host name/],
  ];
  for (const [raw, reason] of invalid) {
    test(`rejects ${JSON.stringify(raw)}`, () => {
      const r = parseTarget(raw);
      assert.equal(r.ok, false);
      assert.match(r.ok ? '(accepted)' : r.reason, reason);
    });
  }
});
