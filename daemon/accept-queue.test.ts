// The accept-queue migration scenario (accept-queue.scenario.ts) flips net.ipv4.tcp_migrate_req
// and reads the kernel's TcpExt counters, so it runs in a network namespace this test creates
// (`unshare -n`, loopback brought up inside): both are per namespace, so the host is untouched
// and no other test's traffic moves the counters. The namespace ends with its last process.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn, spawnSync } from 'node:child_process';
import { once } from 'node:events';

const SCENARIO = new URL('./accept-queue.scenario.ts', import.meta.url).pathname;

function missingTool(): string | undefined {
  for (const tool of ['unshare', 'ip']) if (spawnSync('sh', ['-c', `command -v ${tool}`]).status !== 0) return tool;
  return undefined;
}

test('connections queued on the old generation are served by the new one (in a fresh network namespace)', async (t) => {
  if (process.getuid?.() !== 0) return t.skip('needs root: creating a network namespace (unshare -n) and setting net.ipv4.tcp_migrate_req inside it');
  const missing = missingTool();
  if (missing !== undefined) return t.skip(`"${missing}" is not installed: it is needed to create the test's own network namespace`);

  const child = spawn('unshare', ['-n', '--', 'sh', '-c', 'ip link set lo up && exec "$0" --test --test-timeout=120000 "$1"', process.execPath, SCENARIO], {
    stdio: ['ignore', 'pipe', 'pipe'],
    env: { PATH: process.env.PATH ?? '/usr/bin:/bin' },
  });
  t.after(() => {
    if (child.exitCode === null && child.signalCode === null) child.kill('SIGKILL');
  });
  let out = '';
  child.stdout.on('data', (c: Buffer) => (out += c));
  child.stderr.on('data', (c: Buffer) => (out += c));
  const [code, signal] = (await once(child, 'exit')) as [number | null, NodeJS.Signals | null];
  assert.deepEqual({ code, signal }, { code: 0, signal: null }, `the scenario failed inside the namespace:\n${out}`);
  assert.match(out, /^ℹ pass 1$/m, `the scenario ran and passed:\n${out}`);
});
