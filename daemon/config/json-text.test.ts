import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { findJsonError, lineColumn, parseJsonText } from './json-text.ts';

/** Where V8 itself says the error is, when its message has a position. */
function v8Offset(text: string): number | undefined {
  try {
    JSON.parse(text);
  } catch (err) {
    const m = /at position (\d+)/.exec((err as Error).message);
    return m ? Number(m[1]) : undefined;
  }
  assert.fail(`expected ${JSON.stringify(text)} to be invalid JSON`);
}

describe('findJsonError', () => {
  // Each case: broken text → offset of the first bad character.
  const cases: [string, number][] = [
    ['{"a": tru}', 9],
    ['{"a": 1,}', 8],
    ['[1, 2,]', 6],
    ['{"a" 1}', 5],
    ['{a: 1}', 1],
    ['{"a": 01}', 7],
    ['{"a": "x\\q"}', 9],
    ['{"a": "\\u12G4"}', 11],
    ['{"a": -}', 7],
    ['{"a": 1} x', 9],
    ['[', 1],
    ['{"a": "unterminated', 19],
    ['nul', 3],
  ];
  for (const [text, offset] of cases) {
    test(`${JSON.stringify(text)} → ${offset}`, () => {
      assert.equal(findJsonError(text), offset);
    });
  }

  test('agrees with V8 wherever V8 gives a position', () => {
    let compared = 0;
    for (const [text] of cases) {
      const v8 = v8Offset(text);
      if (v8 === undefined) continue;
      compared++;
      assert.equal(findJsonError(text), v8, `for ${JSON.stringify(text)}`);
    }
    assert.ok(compared >= 3, 'V8 gave too few positions to compare against');
  });

  test('valid JSON → -1', () => {
    assert.equal(findJsonError('{"a": [1, -2.5e3, true, false, null, "\\u00e9\\n"]}'), -1);
  });
});

describe('lineColumn', () => {
  const cases: [string, number, number, number][] = [
    ['abc', 0, 1, 1],
    ['abc', 2, 1, 3],
    ['a\nbc', 2, 2, 1],
    ['a\nbc\n', 4, 2, 3],
    ['a\n\nb', 3, 3, 1],
  ];
  for (const [text, offset, line, column] of cases) {
    test(`${JSON.stringify(text)} @${offset} → ${line}:${column}`, () => {
      assert.deepEqual(lineColumn(text, offset), { line, column });
    });
  }
});

describe('parseJsonText', () => {
  test('returns the value of valid JSON', () => {
    assert.deepEqual(parseJsonText('{"Apps": []}'), { ok: true, value: { Apps: [] } });
  });

  test('uses V8\'s line and column when the message has them', () => {
    const r = parseJsonText('{\n"a": 1\n"b": 2}');
    assert.equal(r.ok, false);
    if (!r.ok) assert.deepEqual([r.issue.line, r.issue.column], [3, 1]);
  });
});
