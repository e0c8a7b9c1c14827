import { test } from 'node:test';
import assert from 'node:assert/strict';
import { replyTag, replyVerdict } from './echo-reply.ts';

const b = (text: string) => Buffer.from(text);

test('replyVerdict tells a complete echo, plain or tagged, from a partial or wrong one', () => {
  const cases: [received: string, sent: string, verdict: string][] = [
    ['', 'hello', 'partial'],
    ['hel', 'hello', 'partial'],
    ['hello', 'hello', 'complete'],
    ['9001', 'hello', 'partial'], // a tag still arriving
    ['9001:', 'hello', 'partial'],
    ['9001:hel', 'hello', 'partial'],
    ['9001:hello', 'hello', 'complete'],
    ['9001:hellox', 'hello', 'wrong'],
    ['hellox', 'hello', 'partial'], // could still be a tag: only ':' or the peer's end settles it
    ['9001:world', 'hello', 'wrong'],
    ['9001', '1', 'partial'], // ends with the data, but no ':' yet: not complete
    ['a:b', 'a:b', 'complete'], // data containing ':' echoed plainly
    ['9001:a:b', 'a:b', 'complete'],
    ['x'.repeat(33), 'ping', 'wrong'], // too long to be a tag
    ['HTTP/1.1 400 Bad Request', 'ping', 'wrong'], // a space: not a tag
    ['pong\n', 'ping', 'wrong'],
  ];
  for (const [received, sent, verdict] of cases) {
    assert.equal(replyVerdict(b(received), b(sent)), verdict, `${JSON.stringify(received)} for ${JSON.stringify(sent)}`);
  }
});

test('replyVerdict with expect wants exactly that reply', () => {
  assert.equal(replyVerdict(b('9001:hi'), b('hi'), b('9001:hi')), 'complete');
  assert.equal(replyVerdict(b('9001:'), b('hi'), b('9001:hi')), 'partial');
  assert.equal(replyVerdict(b('9002:'), b('hi'), b('9001:hi')), 'wrong');
  assert.equal(replyVerdict(b('hi'), b('hi'), b('9001:hi')), 'wrong');
});

test('replyTag is the text before the first colon', () => {
  assert.equal(replyTag('9001:hello'), '9001');
  assert.equal(replyTag('9001:a:b'), '9001');
  assert.equal(replyTag('hello'), 'untagged');
  assert.equal(replyTag(':hello'), 'untagged');
});
