import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { childEnv, runFtest, type CliResult } from './cli-harness.ts';

const COMMANDS = ['serve', 'ping', 'balancer', 'simulate', 'completion'];

test('`npx ftest --help` from the project root runs the CLI on the project\'s Node', async (t) => {
  // A private npm cache: npx installs the project's own bins there, so a stale shared cache
  // (made before bin/ftest.ts existed) cannot hide or fake the result.
  const cache = await mkdtemp(join(tmpdir(), 'ftest-npx-'));
  t.after(() => rm(cache, { recursive: true, force: true }));
  const root = fileURLToPath(new URL('..', import.meta.url));
  const child = spawn('npx', ['--offline', 'ftest', '--help'], {
    cwd: root,
    env: childEnv({ npm_config_cache: cache, npm_config_update_notifier: 'false' }),
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  const timer = setTimeout(() => child.pid !== undefined && child.exitCode === null && process.kill(child.pid, 'SIGKILL'), 20_000);
  t.after(() => clearTimeout(timer));
  let stdout = '';
  let stderr = '';
  child.stdout.setEncoding('utf8').on('data', (chunk: string) => (stdout += chunk));
  child.stderr.setEncoding('utf8').on('data', (chunk: string) => (stderr += chunk));
  const code = await new Promise((resolve) => child.once('close', resolve));
  assert.equal(code, 0, stderr);
  assert.match(stdout, /^Usage: ftest \[options\] \[command\]/);
  for (const name of COMMANDS) assert.match(stdout, new RegExp(`^  ${name} `, 'm'));
});

test('ftest completion bash prints a bash script that asks ftest for candidates', async () => {
  const result = await runFtest(['completion', 'bash']);
  assert.equal(result.code, 0, result.stderr);
  assert.match(result.stdout, /^# bash completion for ftest/);
  assert.match(result.stdout, /ftest complete --/);
  assert.match(result.stdout, /complete .*-F __ftest_complete ftest/);
});

test('ftest completion zsh and fish print scripts too; an unknown shell is an error', async () => {
  const [zsh, fish, bad] = await Promise.all([runFtest(['completion', 'zsh']), runFtest(['completion', 'fish']), runFtest(['completion', 'tcsh'])]);
  for (const result of [zsh, fish]) {
    assert.equal(result.code, 0, result.stderr);
    assert.match(result.stdout, /ftest complete --/);
  }
  assert.equal(bad.code, 1);
  assert.match(bad.stderr, /Allowed choices are zsh, bash, fish/);
});

test('the completion callback offers the command names, then each command\'s options', async () => {
  const names = (result: CliResult) => result.stdout.split('\n').filter((line) => !line.startsWith(':')).map((line) => line.split('\t')[0]);
  const [commands, options] = await Promise.all([runFtest(['complete', '--', '']), runFtest(['complete', '--', 'simulate', '--k'])]);
  assert.equal(commands.code, 0, commands.stderr);
  for (const name of COMMANDS) assert.ok(names(commands).includes(name), `${name} in ${commands.stdout}`);

  assert.deepEqual(names(options).filter(Boolean), ['--keepalive']);
});
