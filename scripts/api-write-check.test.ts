// The short api-write-check run: admin API writes (adds, drains, removes, whole-app replaces,
// concurrent adds) under load lose no connection and leave the config file as the API left it.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { once } from 'node:events';

const SCRIPT = new URL('./api-write-check', import.meta.url).pathname;

test('api-write-check: 10 rounds of API writes under load, 0 failed connections', async (t) => {
  const child = spawn(SCRIPT, ['--writes', '10', '--concurrency', '10', '--timeout-ms', '30000'], { stdio: ['ignore', 'pipe', 'pipe'], env: { PATH: process.env.PATH ?? '/usr/bin:/bin' } });
  t.after(() => {
    if (child.exitCode === null && child.signalCode === null) child.kill('SIGKILL');
  });
  let out = '';
  let err = '';
  child.stdout.on('data', (c: Buffer) => (out += c));
  child.stderr.on('data', (c: Buffer) => (err += c));
  const [code] = await once(child, 'exit');
  t.diagnostic(out.trim());
  assert.equal(code, 0, `api-write-check failed:\n${out}\n${err}`);
  assert.match(out, /^failures: +0$/m);
  assert.ok(Number(/^api writes: +(\d+)/m.exec(out)?.[1]) >= 20, out);
  assert.ok(Number(/^connections made: +(\d+)/m.exec(out)?.[1]) >= 20, out);
  assert.match(out, /^OK$/m);
});
