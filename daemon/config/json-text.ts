// JSON text → value, or one issue saying where (line and column) and why it is not JSON. Pure.
// V8's SyntaxError messages come in several forms: "... in JSON at position N (line L column C)",
// "... at position N", and "Unexpected token '}', "…" is not valid JSON" with no position at all;
// the last is located with a small grammar scanner so every JSON error has a line and column.

export interface JsonIssue {
  readonly path: '';
  readonly message: string;
  readonly line: number;
  readonly column: number;
}

export type JsonParse = { ok: true; value: unknown } | { ok: false; issue: JsonIssue };

export function parseJsonText(text: string): JsonParse {
  // Some editors save a byte-order mark; JSON.parse rejects it, and it is never a user's mistake.
  const body = text.startsWith('\uFEFF') ? text.slice(1) : text;
  if (body.trim() === '') {
    return { ok: false, issue: { path: '', message: 'the config is empty: write at least {"Apps": []}', line: 1, column: 1 } };
  }
  try {
    return { ok: true, value: JSON.parse(body) };
  } catch (err) {
    const message = err instanceof Error ? err.message : String(err);
    const { line, column, offset } = locate(body, message);
    const reason = describe(message);
    const hint = hintAt(body, offset);
    return {
      ok: false,
      issue: { path: '', message: `invalid JSON at line ${line}, column ${column}: ${reason}${hint}`, line, column },
    };
  }
}

function locate(text: string, message: string): { line: number; column: number; offset: number } {
  const lc = /\(line (\d+) column (\d+)\)/.exec(message);
  if (lc) {
    const line = Number(lc[1]);
    const column = Number(lc[2]);
    return { line, column, offset: offsetOf(text, line, column) };
  }
  const pos = /at position (\d+)/.exec(message);
  const offset = pos ? Number(pos[1]) : /end of JSON input/.test(message) ? text.length : findJsonError(text);
  return { ...lineColumn(text, offset), offset };
}

/** "Expected ',' or '}' after property value in JSON at position 7 (…)" → "expected ',' or '}' after property value". */
function describe(message: string): string {
  const reason = message
    .replace(/\s+in JSON at position \d+.*$/s, '')
    .replace(/, ".*" is not valid JSON$/s, '')
    .replace(/ of JSON input$/, ' of the file');
  return reason.charAt(0).toLowerCase() + reason.slice(1);
}

/** The two mistakes people make most when hand-editing JSON. */
function hintAt(text: string, offset: number): string {
  const c = text[offset];
  if (c === '/' || c === '#') return ' (JSON allows no comments: remove it)';
  if (c === '}' || c === ']') {
    const before = text.slice(0, offset).trimEnd();
    if (before.endsWith(',')) return ' (JSON allows no trailing comma: remove the "," before it)';
  }
  return '';
}

/** 1-based line and column of a UTF-16 offset, as editors count them. */
export function lineColumn(text: string, offset: number): { line: number; column: number } {
  const before = text.slice(0, offset);
  const lastBreak = before.lastIndexOf('\n');
  let line = 1;
  for (let i = before.indexOf('\n'); i >= 0; i = before.indexOf('\n', i + 1)) line++;
  return { line, column: offset - lastBreak };
}

function offsetOf(text: string, line: number, column: number): number {
  let start = 0;
  for (let l = 1; l < line; l++) {
    const next = text.indexOf('\n', start);
    if (next < 0) break;
    start = next + 1;
  }
  return start + column - 1;
}

const NUMBER = /-?(?:0|[1-9][0-9]*)(?:\.[0-9]+)?(?:[eE][+-]?[0-9]+)?/y;
const WS = ' \t\n\r';

/**
 * Offset of the first character that breaks the JSON grammar (text.length when the text ends
 * early, -1 when it is valid). Only called after JSON.parse failed, so speed does not matter.
 */
export function findJsonError(text: string): number {
  let i = 0;
  const fail = (at: number): never => {
    throw new JsonStop(at);
  };
  const skip = () => {
    while (i < text.length && WS.includes(text[i] as string)) i++;
  };
  const expect = (c: string) => {
    skip();
    if (text[i] !== c) fail(i);
    i++;
  };
  const str = () => {
    i++; // opening quote
    for (;;) {
      const c = text[i];
      if (c === undefined) fail(i);
      if (c === '"') return void i++;
      if (c === '\\') {
        const e = text[i + 1];
        if (e === 'u') {
          for (let k = i + 2; k < i + 6; k++) if (!/[0-9a-fA-F]/.test(text[k] ?? '')) fail(k);
          i += 6;
        } else if (e !== undefined && '"\\/bfnrt'.includes(e)) i += 2;
        else fail(i + 1);
      } else if ((c as string) < ' ') fail(i);
      else i++;
    }
  };
  const value = (): void => {
    skip();
    const c = text[i];
    if (c === '{' || c === '[') {
      const close = c === '{' ? '}' : ']';
      i++;
      skip();
      if (text[i] === close) return void i++;
      for (;;) {
        if (c === '{') {
          skip();
          if (text[i] !== '"') fail(i);
          str();
          expect(':');
        }
        value();
        skip();
        if (text[i] === ',') i++;
        else if (text[i] === close) return void i++;
        else fail(i);
      }
    }
    if (c === '"') return str();
    for (const word of ['true', 'false', 'null']) {
      if (c !== word[0]) continue;
      for (let k = 0; k < word.length; k++) if (text[i + k] !== word[k]) fail(i + k);
      i += word.length;
      return;
    }
    NUMBER.lastIndex = i;
    if (NUMBER.test(text)) i = NUMBER.lastIndex;
    else fail(c === '-' ? i + 1 : i);
  };
  try {
    value();
    skip();
    return i < text.length ? i : -1;
  } catch (err) {
    if (err instanceof JsonStop) return Math.min(err.at, text.length);
    return text.length; // nesting deep enough to overflow the stack: point at the end
  }
}

class JsonStop {
  readonly at: number;
  constructor(at: number) {
    this.at = at;
  }
}
