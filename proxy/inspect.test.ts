// The first-bytes reader both accept paths share (Session feeds it socket chunks, NativeSession what
// it recv()s): plain bytes in, a step out, however the bytes are split.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { DONE, EMPTY, FAILED, HEADER, Inspector, MORE, type InspectStep } from './inspect.ts';

/** `openssl s_client -servername a.example.test -alpn h2,http/1.1`'s ClientHello. */
const HELLO = readFileSync(new URL('./tls/fixtures/openssl-sni-alpn.bin', import.meta.url));
const HEADER_V1 = Buffer.from('PROXY TCP4 10.1.2.3 10.4.5.6 1111 443\r\n');

/** Feeds `bytes` cut at `cuts`; after a HEADER step goes on with feed(EMPTY), as the accept paths do once admitted. */
function feedSplit(inspector: Inspector, bytes: Buffer, cuts: number[]): InspectStep[] {
  const steps: InspectStep[] = [];
  let from = 0;
  for (const to of [...cuts, bytes.length]) {
    let step = inspector.feed(bytes.subarray(from, to));
    from = to;
    if (step === HEADER) {
      steps.push(step);
      step = inspector.feed(EMPTY);
    }
    steps.push(step);
    if (step === DONE || step === FAILED) break;
  }
  return steps;
}

test('PROXY header then ClientHello, split at every byte: the header is read once, the hello routes, every hello byte is kept to forward', () => {
  const wire = Buffer.concat([HEADER_V1, HELLO, Buffer.from('early data')]);
  for (let cut = 1; cut < wire.length; cut++) {
    const inspector = new Inspector(true, true);
    const steps = feedSplit(inspector, wire, [cut]);
    assert.equal(steps.filter((s) => s === HEADER).length, 1, `cut ${cut}`);
    assert.equal(steps.at(-1), DONE, `cut ${cut}`);
    assert.equal(inspector.header?.sourceAddress, '10.1.2.3');
    assert.equal(inspector.header?.destinationPort, 443);
    assert.equal(inspector.sni, 'a.example.test');
    assert.deepEqual(inspector.alpn, ['h2', 'http/1.1']);
    // Everything fed after the header goes upstream: all of it when the hello completed in the
    // second chunk, the first chunk's share when it completed there (the rest is still to come).
    const fed = cut >= HEADER_V1.length + HELLO.length ? cut : wire.length;
    assert.deepEqual(inspector.rest, wire.subarray(HEADER_V1.length, fed), `cut ${cut}`);
  }
});

test('a ClientHello a byte at a time: MORE until its last byte, then DONE with all of it', () => {
  const inspector = new Inspector(false, true);
  let step: InspectStep = MORE;
  for (let i = 0; i < HELLO.length; i++) {
    step = inspector.feed(HELLO.subarray(i, i + 1));
    if (i < HELLO.length - 1) assert.equal(step, MORE, `byte ${i}`);
  }
  assert.equal(step, DONE);
  assert.deepEqual(inspector.rest, HELLO);
});

test('PROXY header alone (no TLS): DONE right after it, with what followed or nothing', () => {
  const alone = new Inspector(true, false);
  assert.deepEqual(feedSplit(alone, HEADER_V1, []), [HEADER, DONE]);
  assert.equal(alone.rest, null);
  const withData = new Inspector(true, false);
  assert.deepEqual(feedSplit(withData, Buffer.concat([HEADER_V1, Buffer.from('hello')]), []), [HEADER, DONE]);
  assert.equal(withData.rest?.toString(), 'hello');
});

test('bytes that cannot start a header or a hello fail at once, with the reason', () => {
  const notProxy = new Inspector(true, false);
  assert.equal(notProxy.feed(Buffer.from('GET / HTTP/1.1\r\n')), FAILED);
  assert.equal(notProxy.code, 'ERR_PROXY_HEADER_MISSING');
  const notTls = new Inspector(false, true);
  assert.equal(notTls.feed(Buffer.from('GET')), FAILED);
  assert.equal(notTls.code, 'ERR_NOT_TLS');
});
