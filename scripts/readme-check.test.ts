// readme-check's parsing and output comparison (pure), and the README itself: every marker sits on
// a block, and every command the README shows in a checked session is one readme-check runs.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readFile } from 'node:fs/promises';
import { compareOutput, normalize, parseOptions, parseReadme } from './readme-check.ts';

const README = new URL('../README.md', import.meta.url);

test('markers are read with their block: run, session (commands and expected output), terminal, stop, skip', () => {
  const steps = parseReadme([
    'text',
    '<!-- readme-check: run exit=2 -->',
    '```sh',
    'false',
    '```',
    '<!-- readme-check: terminal ready=127.0.0.1:9900,[::1]:5001 -->',
    '```sh',
    'make run',
    '```',
    '<!-- readme-check: session also="even (tolerance 1)" also="x y" -->',
    '```sh',
    '$ echo a',
    'a',
    '$ true',
    '```',
    '<!-- readme-check: stop -->',
    '<!-- readme-check: skip reason="needs root" -->',
    '```sh',
    'sudo x',
    '```',
  ].join('\n'));
  assert.deepEqual(steps, [
    { kind: 'run', line: 2, script: 'false', exit: 2 },
    { kind: 'terminal', line: 6, script: 'make run', ready: [{ host: '127.0.0.1', port: 9900 }, { host: '[::1]', port: 5001 }] },
    { kind: 'session', line: 10, commands: [{ command: 'echo a', expected: ['a'] }, { command: 'true', expected: [] }], exit: 0, also: ['even (tolerance 1)', 'x y'] },
    { kind: 'stop', line: 16 },
    { kind: 'skip', line: 17, reason: 'needs root', script: 'sudo x' },
  ]);
});

test('a marker without its block, or of an unknown kind, is an error naming the line', () => {
  assert.throws(() => parseReadme('<!-- readme-check: run -->\ntext\n```sh\nx\n```'), /README line 1: "run" marker must sit right above a fenced block/);
  assert.throws(() => parseReadme('<!-- readme-check: frob -->\n```sh\nx\n```'), /unknown readme-check kind "frob"/);
});

test('output matches when only numbers differ; words, missing and extra lines do not', () => {
  assert.equal(normalize('counts: 9001=31 9002=29  '), 'counts: #=# #=#');
  assert.equal(compareOutput(['ok 5000, errors 0, 4129.8 ok exchanges/s'], ['ok 4999, errors 1, 12 ok exchanges/s', '']), -1);
  assert.equal(compareOutput(['spread: 2 (max 31, min 29): uneven'], ['spread: 0 (max 30, min 30): even']), 0);
  assert.equal(compareOutput(['spread: 2 (max 31, min 29): uneven'], ['spread: 0 (max 30, min 30): even'], ['spread: 0 (max 30, min 30): even']), -1);
  assert.equal(compareOutput(['a', 'b'], ['a']), 1);
  assert.equal(compareOutput(['a'], ['a', 'errors: refused 3']), 1);
  assert.deepEqual([...parseOptions('exit=1 also="a \\"b\\"" also=c')], [['exit', ['1']], ['also', ['a "b"', 'c']]]);
});

test('the README parses: checked sessions show commands, terminals are stopped, skips give a reason', async () => {
  const steps = parseReadme(await readFile(README, 'utf8'));
  assert.ok(steps.filter((s) => s.kind === 'session').every((s) => s.kind === 'session' && s.commands.length > 0));
  assert.equal(steps.filter((s) => s.kind === 'terminal').length, steps.filter((s) => s.kind === 'stop').length, 'every terminal is stopped');
  assert.ok(steps.filter((s) => s.kind === 'skip').every((s) => s.kind === 'skip' && s.reason.length > 10));
  const commands = steps.flatMap((s) => (s.kind === 'session' ? s.commands.map((c) => c.command) : []));
  assert.ok(commands.some((c) => c.startsWith('npx ftest balancer 127.0.0.1:5001 -n 60')), 'the first example is checked');
});
