// The short rollout-check run that is part of `make test`: 8 rewrites under load, no failure, for
// the plain TCP app and the TLS passthrough app alike.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { once } from 'node:events';

const SCRIPT = new URL('./rollout-check', import.meta.url).pathname;

test('rollout-check: 8 config rewrites under load lose no connection, TCP or TLS', async (t) => {
  // Time-to-effect and exchange timeouts are figures of the full run (--effect-ms 1000,
  // --timeout-ms 5000 there); here, sharing a busy 2-core machine, a rewrite only has to take
  // effect at all (within 60 s) and an exchange to complete at all (within 30 s), at a load that
  // leaves CPU to the rest of the suite. Failures must be 0 either way.
  const child = spawn(SCRIPT, ['--rewrites', '8', '--effect-ms', '20000', '--timeout-ms', '30000', '--concurrency', '20'], {
    stdio: ['ignore', 'pipe', 'pipe'],
    env: { PATH: process.env.PATH ?? '/usr/bin:/bin' },
  });
  t.after(() => {
    if (child.exitCode === null && child.signalCode === null) child.kill('SIGKILL');
  });
  let out = '';
  let err = '';
  child.stdout.on('data', (c: Buffer) => (out += c));
  child.stderr.on('data', (c: Buffer) => (err += c));
  const [code] = await once(child, 'exit');
  t.diagnostic(out.trim());
  assert.equal(code, 0, `rollout-check failed:\n${out}\n${err}`);
  assert.match(out, /^failures: +0$/m);
  assert.match(out, /^tls failures: +0$/m);
  assert.match(out, /^long-lived cut: +0 of 20 /m);
  assert.match(out, /^rollouts: +8 \(8 rewrites\)$/m);
  assert.match(out, /^tls rollouts: +8 \(8 rewrites\)$/m);
  assert.match(out, /^workers: +2 per app \(rolling, steady, tls-pass\)$/m);
  const connections = Number(/^connections made: +(\d+)/m.exec(out)?.[1]);
  assert.ok(connections >= 16, `${connections} connections made under load (at least 2 a rewrite)`);
  const tlsConnections = Number(/^tls connections made: +(\d+)/m.exec(out)?.[1]);
  assert.ok(tlsConnections >= 16, `${tlsConnections} TLS connections made under load (at least 2 a rewrite)`);
  // Both routes were served by both of their target sets (the rollouts switched them under load).
  const answeredBy = /^tls load: .*answered by (.*)$/m.exec(out)?.[1] ?? '';
  for (const tag of ['a0', 'a1', 'b0', 'b1']) assert.match(answeredBy, new RegExp(`\\b${tag} [1-9]\\d*\\b`), `TLS target ${tag} never answered: ${answeredBy}`);
  assert.match(out, /^OK$/m);
});

test('rollout-check rejects a bad flag with exit 1', async () => {
  const child = spawn(SCRIPT, ['--rewrites', 'many'], { stdio: ['ignore', 'pipe', 'pipe'], env: { PATH: process.env.PATH ?? '/usr/bin:/bin' } });
  let err = '';
  child.stderr.on('data', (c: Buffer) => (err += c));
  const [code] = await once(child, 'exit');
  assert.equal(code, 1);
  assert.match(err, /Invalid --rewrites "many"/);
});
