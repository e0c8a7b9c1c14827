import { test } from 'node:test';
import assert from 'node:assert/strict';
import { parseTarget } from './address.ts';
import { checkBalancer } from './balancer.ts';
import { closedPort, runFtest, startForwarder } from './cli-harness.ts';
import { startEchoServers } from './echo-server.ts';

test('balancer --json against one tagged echo counts every connection for that target', async (t) => {
  const servers = await startEchoServers({ ports: [0], tag: true });
  t.after(() => servers.close());
  const port = String(servers.ports[0]);
  const result = await runFtest(['balancer', `127.0.0.1:${port}`, '-n', '5', '--json']);
  assert.equal(result.code, 0, result.stderr);
  assert.deepEqual(JSON.parse(result.stdout), {
    sequence: [port, port, port, port, port],
    counts: { [port]: 5 },
    spread: 0,
    even: true,
    tolerance: 1,
    failures: [],
  });
});

test('balancer through a round-robin over three targets sees the rotation and an even spread', async (t) => {
  const servers = await startEchoServers({ ports: [0, 0, 0], tag: true, host: '127.0.0.1' });
  t.after(() => servers.close());
  const forwarder = await startForwarder(servers.ports);
  t.after(() => forwarder.close());
  const [a, b, c] = servers.ports.map(String) as [string, string, string];
  const expect = [`${a}:one`, `${b}:two`, `${c}:one`, `${a}:two`, `${b}:one`, `${c}:two`];
  const result = await runFtest(['balancer', `127.0.0.1:${forwarder.port}`, '-n', '7', '--data', 'one', 'two', '--expect', ...expect]);
  assert.equal(result.code, 0, result.stdout + result.stderr);
  assert.match(result.stdout, new RegExp(`^ +1  ${a}\n +2  ${b}\n +3  ${c}\n +4  ${a}\n`, 'm'));
  // Targets listed in the order they first answered.
  assert.match(result.stdout, new RegExp(`^counts: ${a}=3 ${b}=2 ${c}=2$`, 'm'));
  assert.match(result.stdout, /^spread: 1 \(max 3, min 2\): even \(tolerance 1\)$/m);
});

test('balancer reports an uneven spread and replies that miss --expect, and exits 1 on the wrong replies', async (t) => {
  const servers = await startEchoServers({ ports: [0, 0], tag: true, host: '127.0.0.1' });
  t.after(() => servers.close());
  // Two connections to the first target for every one to the second.
  const forwarder = await startForwarder(servers.ports, [0, 0, 1]);
  t.after(() => forwarder.close());
  const [a, b] = servers.ports.map(String) as [string, string];
  const report = await checkBalancer({ target: parseTarget(`127.0.0.1:${forwarder.port}`), count: 6, expect: [`${a}:ping`, `${b}:ping`] });
  assert.deepEqual(report.sequence, [a, a, b, a, a, b]);
  assert.deepEqual(report.counts, { [a]: 4, [b]: 2 });
  assert.equal(report.even, false);
  // Reached a a b a a b, expected a b a b a b: connections 1, 2 and 3 (0-based) got the wrong target.
  assert.deepEqual(report.failures.map((f) => [f.index, f.kind]), [[1, 'wrongReply'], [2, 'wrongReply'], [3, 'wrongReply']]);
  assert.match(report.failures[0]!.message, new RegExp(`got "${a}:.*expected "${b}:ping"`));

  const cli = await runFtest(['balancer', `127.0.0.1:${forwarder.port}`, '-n', '6', '--expect', `${a}:ping`, `${b}:ping`, '--json']);
  assert.equal(cli.code, 1);
  assert.deepEqual(JSON.parse(cli.stdout).counts, { [a]: 4, [b]: 2 });
  assert.equal(JSON.parse(cli.stdout).even, false);
});

test('an uneven spread is reported but fails only with --expect-even or beyond --tolerance', async (t) => {
  const servers = await startEchoServers({ ports: [0, 0], tag: true, host: '127.0.0.1' });
  t.after(() => servers.close());
  // 4 to the first target, 2 to the second: spread 2, as two workers each rotating exactly can give.
  const forwarder = await startForwarder(servers.ports, [0, 0, 1]);
  t.after(() => forwarder.close());
  const [a, b] = servers.ports.map(String) as [string, string];
  const address = `127.0.0.1:${forwarder.port}`;

  const plain = await runFtest(['balancer', address, '-n', '6']);
  assert.equal(plain.code, 0, plain.stdout + plain.stderr);
  assert.match(plain.stdout, new RegExp(`^counts: ${a}=4 ${b}=2$`, 'm'));
  assert.match(plain.stdout, /^spread: 2 \(max 4, min 2\): uneven \(tolerance 1; not checked, --expect-even fails on it\)$/m);

  const strict = await runFtest(['balancer', address, '-n', '6', '--expect-even', '--json']);
  assert.equal(strict.code, 1);
  assert.deepEqual(JSON.parse(strict.stdout).spread, 2);
  assert.equal(JSON.parse(strict.stdout).even, false);

  const tolerant = await runFtest(['balancer', address, '-n', '6', '--tolerance', '2']);
  assert.equal(tolerant.code, 0, tolerant.stdout);
  assert.match(tolerant.stdout, /^spread: 2 \(max 4, min 2\): even \(tolerance 2\)$/m);
  const tooStrict = await runFtest(['balancer', address, '-n', '6', '--tolerance', '1']);
  assert.equal(tooStrict.code, 1);
});

test('balancer counts failed connections as failures with a null in the sequence', async (t) => {
  const port = await closedPort(t);
  const result = await runFtest(['balancer', `127.0.0.1:${port}`, '-n', '2', '--json']);
  assert.equal(result.code, 1);
  const report = JSON.parse(result.stdout);
  assert.deepEqual(report.sequence, [null, null]);
  assert.deepEqual(report.counts, {});
  assert.equal(report.even, false);
  assert.deepEqual(report.failures.map((f: { kind: string }) => f.kind), ['refused', 'refused']);
});
