// Spec for parseClientHello: real ClientHellos captured from openssl, curl and Node (fixtures/capture.ts
// regenerates them), synthetic hellos for the corners real clients rarely show, and a seeded fuzz run.
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { describe, it } from 'node:test';
import { DEFAULT_MAX_CLIENT_HELLO_SIZE, looksLikeTls, parseClientHello } from './client-hello.ts';
import type { ClientHelloResult } from './client-hello.ts';
import { assertFast, concat, parseBoth, prng, SLOW_MS } from '../testing.ts';

// ---- helpers: building hellos and rewriting the record layer ------------------------------------

const enc = new TextEncoder();
const bytes = (s: string | Uint8Array): Uint8Array => (typeof s === 'string' ? enc.encode(s) : s);
const u16 = (n: number) => [(n >> 8) & 0xff, n & 0xff];
const u24 = (n: number) => [(n >> 16) & 0xff, (n >> 8) & 0xff, n & 0xff];
const vec8 = (b: Uint8Array) => concat([b.length], b);
const vec16 = (b: Uint8Array) => concat(u16(b.length), b);

const ext = (type: number, data: Uint8Array | number[]) => concat(u16(type), vec16(Uint8Array.from(data)));
const sniExt = (...names: (string | Uint8Array)[]) => ext(0, vec16(concat(...names.map((n) => concat([0], vec16(bytes(n)))))));
const alpnExt = (...protocols: (string | Uint8Array)[]) => ext(16, vec16(concat(...protocols.map((p) => vec8(bytes(p))))));

interface HelloParts {
  version?: number;
  sessionId?: Uint8Array;
  suites?: number[];
  compression?: number[];
  extensions?: Uint8Array[] | null; // null: no extensions block at all (allowed before TLS 1.3)
  type?: number;
}

/** A handshake message: type, 24-bit length, ClientHello body. */
function helloMessage(p: HelloParts = {}): Uint8Array {
  const body = concat(
    u16(p.version ?? 0x0303),
    new Uint8Array(32).fill(7),
    vec8(p.sessionId ?? new Uint8Array(32).fill(9)),
    vec16(Uint8Array.from((p.suites ?? [0x1301, 0x1302]).flatMap(u16))),
    vec8(Uint8Array.from(p.compression ?? [0])),
    p.extensions === null ? [] : vec16(concat(...(p.extensions ?? [sniExt('example.test')]))),
  );
  return concat([p.type ?? 1], u24(body.length), body);
}

/** Wraps handshake bytes in records of the given payload sizes (the last takes the rest; 16 KiB chunks by default). */
function toRecords(handshake: Uint8Array, sizes: number[] = []): Uint8Array {
  const parts: Uint8Array[] = [];
  let at = 0;
  for (let i = 0; at < handshake.length; i++) {
    const size = Math.min(sizes[i] ?? 16384, handshake.length - at);
    parts.push(concat([0x16, 0x03, 0x01], u16(size), handshake.subarray(at, at + size)));
    at += size;
  }
  return concat(...parts);
}

/** The handshake stream inside a run of records (a test-side walk, independent of the parser). */
function handshakeOf(wire: Uint8Array): Uint8Array {
  const parts: Uint8Array[] = [];
  for (let at = 0; at < wire.length; ) {
    const len = (wire[at + 3]! << 8) | wire[at + 4]!;
    parts.push(wire.subarray(at + 5, at + 5 + len));
    at += 5 + len;
  }
  return concat(...parts);
}

const hello = (p: HelloParts = {}) => toRecords(helloMessage(p));

function ok(result: ClientHelloResult) {
  assert.equal(result.status, 'ok', JSON.stringify(result));
  return result as Extract<ClientHelloResult, { status: 'ok' }>;
}

function errorCode(result: ClientHelloResult): string {
  assert.equal(result.status, 'error', JSON.stringify(result));
  const e = result as Extract<ClientHelloResult, { status: 'error' }>;
  assert.ok(e.message.length > 0);
  return e.code;
}

// ---- real clients -------------------------------------------------------------------------------

const fixture = (name: string) => new Uint8Array(readFileSync(new URL(`./fixtures/${name}.bin`, import.meta.url)));

const FIXTURES: { name: string; client: string; sni: string | undefined; alpn: string[]; records: number }[] = [
  { name: 'openssl-sni-alpn', client: 'openssl s_client -servername a.example.test -alpn h2,http/1.1', sni: 'a.example.test', alpn: ['h2', 'http/1.1'], records: 1 },
  { name: 'openssl-no-sni', client: 'openssl s_client -noservername', sni: undefined, alpn: [], records: 1 },
  { name: 'openssl-tls12', client: 'openssl s_client -tls1_2 -servername c.example.test -alpn http/1.1', sni: 'c.example.test', alpn: ['http/1.1'], records: 1 },
  { name: 'node-sni-alpn', client: 'node 24 tls.connect (X25519MLKEM768 key share)', sni: 'b.example.test', alpn: ['h2'], records: 1 },
  { name: 'curl-sni-alpn', client: 'curl 7.88 https://d.example.test/ (padded to 512)', sni: 'd.example.test', alpn: ['h2', 'http/1.1'], records: 1 },
  {
    name: 'node-big-alpn',
    client: 'node 24 tls.connect with 90 200-byte ALPN names (~19 KB, OpenSSL splits it into 2 records)',
    sni: 'big.example.test',
    alpn: [...Array.from({ length: 90 }, (_, i) => `x-${String(i).padStart(2, '0')}-`.padEnd(200, 'p')), 'h2'],
    records: 2,
  },
];

describe('parseClientHello: ClientHellos captured from real clients', () => {
  for (const f of FIXTURES) {
    it(`${f.name} (${f.client}) → SNI ${f.sni ?? 'none'}, ALPN [${f.alpn.length > 3 ? `${f.alpn.length} names` : f.alpn.join(', ')}]`, () => {
      const wire = fixture(f.name);
      assert.equal(toRecords(handshakeOf(wire), []).length, wire.length, 'fixture is whole records');
      assert.equal(countRecords(wire), f.records);
      assert.deepEqual(parseClientHello(wire), { status: 'ok', sni: f.sni, alpn: f.alpn, helloLength: wire.length });
    });
  }

  it('the Node 24 hello is post-quantum sized (X25519MLKEM768 key share)', () => {
    const wire = fixture('node-sni-alpn');
    assert.ok(wire.length > 1500, `${wire.length} bytes`);
    assert.ok(indexOf(wire, [0x11, 0xec, 0x04, 0xc0]) > 0, 'key_share entry for group 0x11ec with a 1216-byte key');
  });

  it('fed one byte at a time: need-more for every prefix, then ok with the last byte', () => {
    for (const f of FIXTURES) {
      const wire = fixture(f.name);
      for (let n = 0; n < wire.length; n++) {
        const r = parseClientHello(wire.subarray(0, n));
        if (r.status !== 'need-more') assert.fail(`${f.name}: prefix of ${n}/${wire.length} bytes gave ${JSON.stringify(r)}`);
      }
      assert.equal(ok(parseClientHello(wire)).helloLength, wire.length);
    }
  });

  it('bytes after the hello (the rest of the flight, early data) are not part of it', () => {
    for (const f of FIXTURES) {
      const wire = fixture(f.name);
      const more = concat(wire, [0x17, 0x03, 0x03, 0x00, 0x02, 0xaa, 0xbb], [0x16]);
      assert.deepEqual(parseClientHello(more), { status: 'ok', sni: f.sni, alpn: f.alpn, helloLength: wire.length });
    }
  });

  it('a record carrying bytes past the hello must be complete before ok: helloLength covers whole records', () => {
    const message = helloMessage({ extensions: [sniExt('tail.example.test')] });
    const wire = toRecords(concat(message, [0x0b, 0, 0, 2, 0xaa, 0xbb])); // a (bogus) second handshake message
    for (let n = 0; n < wire.length; n++) assert.equal(parseClientHello(wire.subarray(0, n)).status, 'need-more', `prefix ${n}`);
    assert.deepEqual(parseClientHello(wire), { status: 'ok', sni: 'tail.example.test', alpn: [], helloLength: wire.length });
  });

  it('the same hellos re-split into 2 and 3 records parse the same, even byte by byte', () => {
    // Splits inside the 4-byte handshake header are the nasty ones: the length is spread over records.
    const splits = [[1], [2], [3], [4], [5, 1], [1, 1, 1], [40, 40], [100, 3]];
    for (const f of FIXTURES) {
      const hs = handshakeOf(fixture(f.name));
      for (const sizes of [...splits, [Math.floor(hs.length / 2)], [Math.floor(hs.length / 3), Math.floor(hs.length / 3)]]) {
        const wire = toRecords(hs, sizes);
        const expected = { status: 'ok', sni: f.sni, alpn: f.alpn, helloLength: wire.length };
        assert.deepEqual(parseClientHello(wire), expected, `${f.name} split ${sizes}`);
        assert.ok(countRecords(wire) > sizes.length);
      }
      const wire = toRecords(hs, [3, 50]);
      for (let n = 0; n < wire.length; n++) assert.equal(parseClientHello(wire.subarray(0, n)).status, 'need-more', `${f.name} [3, 50] prefix ${n}`);
    }
  });
});

function countRecords(wire: Uint8Array): number {
  let n = 0;
  for (let at = 0; at < wire.length; n++) at += 5 + ((wire[at + 3]! << 8) | wire[at + 4]!);
  return n;
}

function indexOf(hay: Uint8Array, needle: number[]): number {
  outer: for (let i = 0; i + needle.length <= hay.length; i++) {
    for (let j = 0; j < needle.length; j++) if (hay[i + j] !== needle[j]) continue outer;
    return i;
  }
  return -1;
}

// ---- synthetic hellos ---------------------------------------------------------------------------

describe('parseClientHello: extensions', () => {
  it('a hello with no extensions block (TLS 1.2 and older) has no SNI and no ALPN', () => {
    assert.deepEqual(parseClientHello(hello({ extensions: null })), { status: 'ok', sni: undefined, alpn: [], helloLength: 5 + 4 + 2 + 32 + 33 + 6 + 2 });
  });

  it('GREASE extension types and GREASE ALPN names (RFC 8701) are ignored', () => {
    const wire = hello({
      extensions: [ext(0x0a0a, []), sniExt('grease.example.test'), alpnExt(Uint8Array.of(0x1a, 0x1a), 'h2', Uint8Array.of(0xfa, 0xfa), 'http/1.1'), ext(0xdada, [0])],
    });
    assert.deepEqual(parseClientHello(wire), { status: 'ok', sni: 'grease.example.test', alpn: ['h2', 'http/1.1'], helloLength: wire.length });
  });

  it('GREASE look-alikes that are not GREASE are kept as ALPN names', () => {
    const r = ok(parseClientHello(hello({ extensions: [alpnExt(Uint8Array.of(0x1a, 0x2a), Uint8Array.of(0x0a, 0x0a, 0x0a))] })));
    assert.deepEqual(r.alpn, ['\x1a\x2a', '\x0a\x0a\x0a']);
  });

  it('unknown extensions are skipped and the hello still parses', () => {
    const r = ok(parseClientHello(hello({ extensions: [ext(0xfe0d, new Array(300).fill(1)), sniExt('ech.example.test'), ext(43, [2, 3, 4])] })));
    assert.equal(r.sni, 'ech.example.test');
  });

  it('a 15 KB padding extension fits one record; a 40 KB one spans 3 records; both parse', () => {
    for (const [padding, records] of [
      [15_000, 1],
      [40_000, 3],
    ] as const) {
      const wire = hello({ extensions: [sniExt('pad.example.test'), alpnExt('h2'), ext(21, new Array(padding).fill(0))] });
      assert.equal(countRecords(wire), records);
      assert.deepEqual(parseClientHello(wire), { status: 'ok', sni: 'pad.example.test', alpn: ['h2'], helloLength: wire.length });
      for (const n of [5, 9, 16384, 16389, 16390, wire.length - 1].filter((n) => n < wire.length)) assert.equal(parseClientHello(wire.subarray(0, n)).status, 'need-more');
    }
  });
});

describe('parseClientHello: SNI', () => {
  const long = (n: number) => Array.from({ length: Math.ceil(n / 10) }, () => 'abcdefghi.').join('').slice(0, n - 1) + 'z';
  const cases: { name: string | Uint8Array; expect: string; why: string }[] = [
    { name: 'Example.COM', expect: 'example.com', why: 'lower-cased' },
    { name: 'xn--bcher-kva.example', expect: 'xn--bcher-kva.example', why: 'IDNs arrive as A-labels' },
    { name: 'my_host.internal', expect: 'my_host.internal', why: "'_' is tolerated: real clients send it" },
    { name: 'a', expect: 'a', why: 'single label' },
    { name: '1.2.3.4', expect: '1.2.3.4', why: 'digits are valid label characters' },
    { name: long(253), expect: long(253), why: '253 bytes is the maximum' },
    { name: `${'a'.repeat(63)}.test`, expect: `${'a'.repeat(63)}.test`, why: '63-byte label is the maximum' },
    { name: 'a\0b.example.test', expect: 'ERR_SNI_INVALID', why: 'NUL byte' },
    { name: 'example.test\0', expect: 'ERR_SNI_INVALID', why: 'trailing NUL (C-string truncation attack)' },
    { name: '', expect: 'ERR_SNI_INVALID', why: 'empty' },
    { name: long(254), expect: 'ERR_SNI_INVALID', why: 'over 253 bytes' },
    { name: `${'a'.repeat(64)}.test`, expect: 'ERR_SNI_INVALID', why: '64-byte label' },
    { name: 'a..b', expect: 'ERR_SNI_INVALID', why: 'empty label' },
    { name: '.a.test', expect: 'ERR_SNI_INVALID', why: 'leading dot' },
    { name: 'a.test.', expect: 'ERR_SNI_INVALID', why: 'trailing dot (RFC 6066 forbids it)' },
    { name: '-a.test', expect: 'ERR_SNI_INVALID', why: "label starts with '-'" },
    { name: 'a-.test', expect: 'ERR_SNI_INVALID', why: "label ends with '-'" },
    { name: 'a b.test', expect: 'ERR_SNI_INVALID', why: 'space' },
    { name: 'a/b.test', expect: 'ERR_SNI_INVALID', why: 'slash' },
    { name: 'bücher.test', expect: 'ERR_SNI_INVALID', why: 'raw UTF-8 instead of an A-label' },
    { name: Uint8Array.of(0x61, 0xff, 0x62), expect: 'ERR_SNI_INVALID', why: 'byte 0xff' },
  ];
  for (const c of cases) {
    const shown = typeof c.name !== 'string' ? `bytes [${c.name.join(', ')}]` : c.name.length > 30 ? `a ${c.name.length}-byte name` : JSON.stringify(c.name);
    it(`${shown} → ${c.expect.length > 30 ? 'itself' : c.expect} (${c.why})`, () => {
      const r = parseClientHello(hello({ extensions: [sniExt(c.name)] }));
      if (c.expect.startsWith('ERR_')) assert.equal(errorCode(r), c.expect);
      else assert.equal(ok(r).sni, c.expect);
    });
  }

  it('the error message names the offending value with the NUL escaped', () => {
    const r = parseClientHello(hello({ extensions: [sniExt('a\0b.test')] }));
    assert.equal(r.status, 'error');
    assert.match((r as { message: string }).message, /"a\\u0000b\.test".*0x00 at offset 1/);
  });

  it('two host_names in one server_name list → ERR_SNI_INVALID (a router and a target could disagree)', () => {
    assert.equal(errorCode(parseClientHello(hello({ extensions: [sniExt('a.test', 'b.test')] }))), 'ERR_SNI_INVALID');
  });

  it('a server_name entry of another name type is skipped', () => {
    const other = ext(0, vec16(concat([7], vec16(bytes('whatever')), [0], vec16(bytes('real.test')))));
    assert.equal(ok(parseClientHello(hello({ extensions: [other] }))).sni, 'real.test');
    const onlyOther = ext(0, vec16(concat([7], vec16(bytes('whatever')))));
    assert.equal(ok(parseClientHello(hello({ extensions: [onlyOther] }))).sni, undefined);
  });

  it('malformed server_name extensions → ERR_SNI_INVALID', () => {
    for (const data of [[], [0, 0], [0, 5, 0, 0, 1, 0x61], [0, 4, 0, 0, 1, 0x61, 0x62], [0, 4, 0, 0, 5, 0x61]]) {
      assert.equal(errorCode(parseClientHello(hello({ extensions: [ext(0, data)] }))), 'ERR_SNI_INVALID', JSON.stringify(data));
    }
  });
});

describe('parseClientHello: malformed hellos → ERR_CLIENT_HELLO_INVALID', () => {
  const cases: { why: string; wire: () => Uint8Array }[] = [
    { why: 'the same extension twice', wire: () => hello({ extensions: [sniExt('a.test'), alpnExt('h2'), sniExt('b.test')] }) },
    { why: 'an extension overrunning the block', wire: () => hello({ extensions: [Uint8Array.of(0, 16, 0, 9, 0, 3)] }) },
    { why: 'bytes after the extensions block', wire: () => replaceBody(helloMessage(), (b) => concat(b, [0])) },
    { why: 'an extensions length that is 1 byte', wire: () => replaceBody(helloMessage({ extensions: null }), (b) => concat(b, [0])) },
    { why: 'an empty ALPN list', wire: () => hello({ extensions: [ext(16, [0, 0])] }) },
    { why: 'an empty ALPN name', wire: () => hello({ extensions: [alpnExt('h2', '')] }) },
    { why: 'an ALPN name overrunning its list', wire: () => hello({ extensions: [ext(16, [0, 3, 5, 0x68, 0x32])] }) },
    { why: 'a 33-byte session id', wire: () => hello({ sessionId: new Uint8Array(33) }) },
    { why: 'no cipher suites', wire: () => hello({ suites: [] }) },
    { why: 'an odd cipher_suites length', wire: () => replaceBody(helloMessage({ extensions: null }), (b) => concat(b.subarray(0, 67), [0, 3, 0x13, 0x01, 0x13, 1, 0])) },
    { why: 'no compression methods', wire: () => hello({ compression: [] }) },
    { why: 'legacy_version 0x0200', wire: () => hello({ version: 0x0200 }) },
    { why: 'a body too short for the random', wire: () => toRecords(concat([1], u24(10), new Uint8Array(10).fill(3))) },
    { why: 'a ServerHello instead of a ClientHello', wire: () => hello({ type: 2 }) },
    { why: 'a zero-length record', wire: () => Uint8Array.of(0x16, 3, 1, 0, 0) },
    { why: 'a record longer than 2^14', wire: () => concat([0x16, 3, 1], u16(16385), new Uint8Array(16385)) },
    { why: 'an alert record in the middle of the hello', wire: () => concat(toRecords(helloMessage()).subarray(0, 5 + 20).map((b, i) => (i === 4 ? 20 : b)), [0x15, 3, 3, 0, 2, 2, 40]) },
    { why: 'a later record with version 0x0200', wire: () => concat(toRecords(helloMessage(), [20]).subarray(0, 25), [0x16, 2, 0]) },
  ];
  for (const c of cases) {
    it(c.why, () => assert.equal(errorCode(parseClientHello(c.wire())), 'ERR_CLIENT_HELLO_INVALID'));
  }

  it('a non-ClientHello handshake type is rejected as soon as its byte arrives', () => {
    assert.equal(errorCode(parseClientHello(Uint8Array.of(0x16, 3, 1, 0, 80, 2))), 'ERR_CLIENT_HELLO_INVALID');
  });
});

/** Replaces the ClientHello body and fixes the handshake length. */
function replaceBody(message: Uint8Array, edit: (body: Uint8Array) => Uint8Array): Uint8Array {
  const body = edit(message.subarray(4));
  return toRecords(concat([1], u24(body.length), body));
}

describe('parseClientHello: not TLS → ERR_NOT_TLS from the first byte', () => {
  const cases: { what: string; wire: Uint8Array }[] = [
    { what: 'HTTP/1.1', wire: bytes('GET / HTTP/1.1\r\nHost: a.test\r\n\r\n') },
    { what: 'SSH', wire: bytes('SSH-2.0-OpenSSH_9.2\r\n') },
    { what: 'PROXY protocol v1', wire: bytes('PROXY TCP4 1.2.3.4 5.6.7.8 1 2\r\n') },
    { what: 'PROXY protocol v2', wire: Uint8Array.of(0x0d, 0x0a, 0x0d, 0x0a, 0, 0x0d, 0x0a, 0x51, 0x55, 0x49, 0x54, 0x0a) },
    { what: 'SSLv2-compatible ClientHello', wire: Uint8Array.of(0x80, 0x2e, 0x01, 0x03, 0x01, 0x00, 0x15, 0x00, 0x00, 0x00, 0x10) },
    { what: 'TLS alert record', wire: Uint8Array.of(0x15, 3, 3, 0, 2, 2, 40) },
    { what: 'NUL byte', wire: Uint8Array.of(0) },
  ];
  for (const c of cases) {
    it(c.what, () => {
      assert.equal(errorCode(parseClientHello(c.wire.subarray(0, 1))), 'ERR_NOT_TLS');
      assert.equal(errorCode(parseClientHello(c.wire)), 'ERR_NOT_TLS');
      assert.equal(looksLikeTls(c.wire[0]!), false);
    });
  }

  it('0x16 followed by a byte other than 0x03 is not TLS either, decided at byte 2', () => {
    assert.equal(parseClientHello(Uint8Array.of(0x16)).status, 'need-more');
    assert.equal(errorCode(parseClientHello(Uint8Array.of(0x16, 0x47))), 'ERR_NOT_TLS');
    assert.equal(errorCode(parseClientHello(Uint8Array.of(0x16, 0x03, 0x05))), 'ERR_NOT_TLS');
  });

  it('an empty buffer needs more; looksLikeTls accepts only 0x16', () => {
    assert.equal(parseClientHello(new Uint8Array(0)).status, 'need-more');
    assert.equal(looksLikeTls(0x16), true);
    for (const b of [0x00, 0x15, 0x17, 0x47, 0x80, 0xff]) assert.equal(looksLikeTls(b), false);
  });
});

describe('parseClientHello: size cap → ERR_CLIENT_HELLO_TOO_LARGE', () => {
  it('a hello exactly at the cap parses; one byte under the hello is too large', () => {
    const wire = fixture('openssl-sni-alpn');
    assert.equal(ok(parseClientHello(wire, wire.length)).helloLength, wire.length);
    assert.equal(errorCode(parseClientHello(wire, wire.length - 1)), 'ERR_CLIENT_HELLO_TOO_LARGE');
  });

  it('a record declaring more than the cap is rejected from its 5-byte header, before its bytes arrive', () => {
    assert.equal(errorCode(parseClientHello(Uint8Array.of(0x16, 3, 1, 0x40, 0x00), 1000)), 'ERR_CLIENT_HELLO_TOO_LARGE');
  });

  it('a handshake length beyond the cap is rejected from the 4 handshake header bytes', () => {
    const header = Uint8Array.of(0x16, 3, 1, 0x00, 0x10, 1, 0xff, 0xff, 0xff);
    assert.equal(errorCode(parseClientHello(header)), 'ERR_CLIENT_HELLO_TOO_LARGE');
    // Also when the header is split over 1-byte records.
    const split = Uint8Array.of(0x16, 3, 1, 0, 1, 1, 0x16, 3, 1, 0, 1, 0x01, 0x16, 3, 1, 0, 1, 0x00, 0x16, 3, 1, 0, 1, 0x00);
    assert.equal(errorCode(parseClientHello(split)), 'ERR_CLIENT_HELLO_TOO_LARGE', '65536-byte hello');
    assert.equal(parseClientHello(split, 70_000).status, 'need-more');
  });

  it('the default cap is 64 KiB of records; a 70 KB hello is refused from its first 9 bytes', () => {
    assert.equal(DEFAULT_MAX_CLIENT_HELLO_SIZE, 65536);
    // Extensions cap at 64 KiB themselves, so the rest of the bulk is cipher suites.
    const suites = Array.from({ length: 10_000 }, (_, i) => 0x0100 + i);
    const wire = hello({ suites, extensions: [sniExt('huge.test'), ext(21, new Array(50_000).fill(0))] });
    assert.ok(wire.length > 70_000);
    assert.equal(errorCode(parseClientHello(wire)), 'ERR_CLIENT_HELLO_TOO_LARGE');
    assert.equal(errorCode(parseClientHello(wire.subarray(0, 9))), 'ERR_CLIENT_HELLO_TOO_LARGE');
    assert.equal(ok(parseClientHello(wire, 80_000)).sni, 'huge.test');
  });

  it('a non-positive or NaN cap means the default', () => {
    const wire = fixture('node-big-alpn');
    for (const cap of [0, -1, Number.NaN]) assert.equal(parseClientHello(wire, cap).status, 'ok');
    assert.equal(errorCode(parseClientHello(hello({ extensions: [ext(21, new Array(65_536).fill(0))] }), 0)), 'ERR_CLIENT_HELLO_TOO_LARGE');
  });
});

// ---- fuzz ---------------------------------------------------------------------------------------


describe('parseClientHello: fuzz', () => {
  it('20,000 truncated and mutated real hellos: never throws, never over-reads, each call is fast, prefixes agree', () => {
    const SEED = 0x5eed;
    const ITERATIONS = 20_000;
    const BUDGET_MS = 60_000; // bounds the loop on a very busy machine; normally ITERATIONS ends it
    const rand = prng(SEED);
    const int = (n: number) => Math.floor(rand() * n);
    const small = FIXTURES.filter((f) => f.name !== 'node-big-alpn').map((f) => fixture(f.name));
    const big = fixture('node-big-alpn');
    const codes = new Set(['ERR_NOT_TLS', 'ERR_CLIENT_HELLO_TOO_LARGE', 'ERR_CLIENT_HELLO_INVALID', 'ERR_SNI_INVALID']);
    const seen = new Map<string, number>();
    const started = performance.now();
    let parseMs = 0;
    const slow: Uint8Array[] = []; // inputs whose calls took over SLOW_MS once: timed again below
    let i = 0;

    const mutate = (input: Uint8Array): Uint8Array => {
      let b: Uint8Array = Uint8Array.from(input);
      for (let m = 1 + int(4); m > 0; m--) {
        const at = int(b.length);
        switch (int(7)) {
          case 0: // truncate
            b = b.subarray(0, at);
            break;
          case 1: // bit flip
            b[at] = b[at]! ^ (1 << int(8));
            break;
          case 2: // insert a byte
            b = concat(b.subarray(0, at), [int(256)], b.subarray(at));
            break;
          case 3: // delete a byte
            b = concat(b.subarray(0, at), b.subarray(at + 1));
            break;
          case 4: // tamper with a length field: record (3..4), handshake (6..8) or anywhere
            {
              const pos = [3, 4, 6, 7, 8, at][int(6)]!;
              if (pos < b.length) b[pos] = [0x00, 0xff, 0x01, int(256)][int(4)]!;
            }
            break;
          case 5: // 16-bit field somewhere set to an extreme
            if (at + 1 < b.length) b.set(u16([0, 1, 0xffff, 0x7fff][int(4)]!), at);
            break;
          default: // random byte
            b[at] = int(256);
        }
      }
      return b;
    };

    for (; i < ITERATIONS && performance.now() - started < BUDGET_MS; i++) {
      const base = i % 50 === 0 ? big : small[int(small.length)]!;
      const wire = i % 10 === 0 ? base.subarray(0, int(base.length + 1)) : mutate(base);
      const prefix = wire.subarray(0, int(wire.length + 1));
      const { full, part, ms: took } = parseBoth(parseClientHello, wire, prefix, `seed ${SEED} iteration ${i}`);
      parseMs += took;
      if (took > SLOW_MS && slow.length < 20) slow.push(wire);
      const where = `seed ${SEED} iteration ${i}`;
      for (const r of [full, part]) {
        if (r.status === 'ok') {
          assert.ok(r.helloLength > 0 && r.helloLength <= wire.length, where);
          assert.ok(r.sni === undefined || /^[a-z0-9_.-]{1,253}$/.test(r.sni), where);
        } else if (r.status === 'error') {
          assert.ok(codes.has(r.code) && r.message.length > 0, where);
        } else {
          assert.equal(r.status, 'need-more', where);
        }
      }
      // Bytes are judged in arrival order: a verdict on a prefix is the verdict on the whole.
      if (part.status !== 'need-more') assert.deepEqual(full, part, `${where}: prefix ${prefix.length}/${wire.length}`);
      if (full.status === 'ok' && prefix.length < full.helloLength) assert.equal(part.status, 'need-more', where);
      const key = full.status === 'error' ? full.code : full.status;
      seen.set(key, (seen.get(key) ?? 0) + 1);
    }

    assert.ok(i >= 2_000, `only ${i} iterations in ${BUDGET_MS} ms`);
    assertFast(parseClientHello, parseMs, i, slow);
    // The mutations must reach every outcome, or the fuzz is not exploring.
    for (const key of ['ok', 'need-more', 'ERR_CLIENT_HELLO_INVALID', 'ERR_CLIENT_HELLO_TOO_LARGE', 'ERR_NOT_TLS', 'ERR_SNI_INVALID']) assert.ok(seen.has(key), `never saw ${key}: ${[...seen]}`);
  });
});
