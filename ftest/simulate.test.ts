import { test } from 'node:test';
import assert from 'node:assert/strict';
import { parseTarget } from './address.ts';
import { closedPort, runFtest, startServer } from './cli-harness.ts';
import { startEchoServers } from './echo-server.ts';
import type { Failure } from './failure.ts';
import { simulate } from './simulate.ts';

const NO_ERRORS = { refused: 0, reset: 0, timeout: 0, closed: 0, wrongReply: 0, other: 0 };

function assertPercentiles(p: Record<string, number>, count: number) {
  assert.deepEqual(Object.keys(p).sort(), ['count', 'max', 'p50', 'p90', 'p99', 'p999']);
  assert.equal(p.count, count);
  assert.ok(p.p50! > 0, `p50 ${p.p50}`);
  assert.ok(p.p50! <= p.p90! && p.p90! <= p.p99! && p.p99! <= p.p999! && p.p999! <= p.max!, JSON.stringify(p));
}

test('simulate -c 10 -n 300 --json against an echo: 300 ok, 0 errors, the documented shape', async (t) => {
  const servers = await startEchoServers({ ports: [0], tag: true });
  t.after(() => servers.close());
  const result = await runFtest(['simulate', `127.0.0.1:${servers.ports[0]}`, '-c', '10', '-n', '300', '--json']);
  assert.equal(result.code, 0, result.stderr);
  assert.equal(result.stderr, '', 'no progress bar without a TTY');
  const summary = JSON.parse(result.stdout);
  assert.equal(summary.ok, 300);
  assert.equal(summary.errors, 0);
  assert.equal(summary.exchanges, 300);
  assert.deepEqual(summary.errorsByKind, NO_ERRORS);
  assert.ok(summary.exchangesPerSec > 0);
  assert.equal(summary.stoppedBy, 'total');
  assertPercentiles(summary.dial, 300); // a new connection per exchange
  assertPercentiles(summary.rtt, 300);
});

test('simulate prints a readable summary by default', async (t) => {
  const servers = await startEchoServers({ ports: [0] });
  t.after(() => servers.close());
  const result = await runFtest(['simulate', `127.0.0.1:${servers.ports[0]}`, '-n', '50']);
  assert.equal(result.code, 0, result.stderr);
  assert.match(result.stdout, /^simulate 127\.0\.0\.1:\d+: 50 exchanges in [\d.]+ s, concurrency 10, a new connection per exchange$/m);
  assert.match(result.stdout, /^ok 50, errors 0, [\d.]+ ok exchanges\/s$/m);
  assert.match(result.stdout, /^rtt ms +p50 [\d.]+ +p90 [\d.]+ +p99 [\d.]+ +p99\.9 [\d.]+ +max [\d.]+ +\(n=50\)$/m);
});

test('simulate --keepalive reuses one connection per worker, over IPv6', async (t) => {
  const servers = await startEchoServers({ ports: [0], tag: true });
  t.after(() => servers.close());
  const summary = await simulate({ target: parseTarget(`[::1]:${servers.ports[0]}`), concurrency: 4, total: 200, keepalive: true });
  assert.equal(summary.ok, 200);
  assert.equal(summary.errors, 0);
  assert.equal(summary.dial.count, 4, 'one dial per worker');
  assert.equal(summary.rtt.count, 200);
  assert.equal(summary.target, `[::1]:${servers.ports[0]}`);
});

test('simulate against a closed port counts every exchange as refused, and reports each one', async (t) => {
  const port = await closedPort(t);
  const seen: Failure[] = [];
  const before = Date.now();
  const summary = await simulate({ target: parseTarget(`127.0.0.1:${port}`), concurrency: 3, total: 20, onError: (f) => seen.push(f) });
  assert.equal(summary.ok, 0);
  assert.equal(summary.errors, 20);
  assert.deepEqual(summary.errorsByKind, { ...NO_ERRORS, refused: 20 });
  assert.equal(seen.length, 20);
  assert.equal(summary.failures.length, 20);
  for (const failure of seen) {
    assert.equal(failure.code, 'ECONNREFUSED');
    assert.ok(failure.at >= before && failure.at <= Date.now(), 'timestamped with wall-clock time');
  }
  assert.equal(summary.dial.count, 0);
});

test('simulate counts wrong replies, resets and timeouts by kind', async (t) => {
  const liar = await startServer((socket) => socket.on('data', () => socket.write('not an echo')));
  t.after(() => liar.close());
  const wrong = await simulate({ target: parseTarget(`127.0.0.1:${liar.port}`), total: 10, keepFailures: 2, timeoutMs: 2000 });
  assert.deepEqual(wrong.errorsByKind, { ...NO_ERRORS, wrongReply: 10 });
  assert.equal(wrong.failures.length, 2, 'keeps only the first keepFailures');
  assert.match(wrong.failures[0]!.message, /got "not an echo", expected an echo of "ping"/);

  const resetter = await startServer((socket) => socket.once('data', () => socket.resetAndDestroy()));
  t.after(() => resetter.close());
  const reset = await simulate({ target: parseTarget(`127.0.0.1:${resetter.port}`), total: 10, timeoutMs: 2000 });
  assert.deepEqual(reset.errorsByKind, { ...NO_ERRORS, reset: 10 });

  const silent = await startServer(() => {});
  t.after(() => silent.close());
  const timeout = await simulate({ target: parseTarget(`127.0.0.1:${silent.port}`), concurrency: 5, total: 5, timeoutMs: 200 });
  assert.deepEqual(timeout.errorsByKind, { ...NO_ERRORS, timeout: 5 });
});

test('simulate stops on abort and by duration, letting exchanges in flight finish', async (t) => {
  const servers = await startEchoServers({ ports: [0] });
  t.after(() => servers.close());
  const target = parseTarget(`127.0.0.1:${servers.ports[0]}`);

  const controller = new AbortController();
  const aborted = await simulate({
    target,
    concurrency: 2,
    total: 1_000_000,
    keepalive: true,
    signal: controller.signal,
    onProgress: (done) => done >= 100 && controller.abort(),
  });
  assert.equal(aborted.stoppedBy, 'signal');
  assert.equal(aborted.errors, 0);
  assert.ok(aborted.ok >= 100 && aborted.ok <= 102, `ok ${aborted.ok}`);

  const timed = await simulate({ target, concurrency: 2, durationMs: 200, keepalive: true });
  assert.equal(timed.stoppedBy, 'duration');
  assert.equal(timed.errors, 0);
  assert.ok(timed.ok > 0);
  // Stopped by the duration: not before it; the upper side only catches a run that ignored it.
  assert.ok(timed.elapsedMs >= 200 && timed.elapsedMs < 30_000, `elapsed ${timed.elapsedMs}`);
});

test('simulate rejects out-of-range options with ERR_FTEST_OPTION', async () => {
  const target = parseTarget('127.0.0.1:1');
  await assert.rejects(simulate({ target, concurrency: 0 }), { code: 'ERR_FTEST_OPTION' });
  await assert.rejects(simulate({ target, durationMs: 2 * 3_600_000 }), { code: 'ERR_FTEST_OPTION' });
  await assert.rejects(simulate({ target, total: 1.5 }), { code: 'ERR_FTEST_OPTION' });
});

test('simulate exits 0 despite errors, and 1 once --max-errors is exceeded or an option is bad', async (t) => {
  const port = await closedPort(t);
  const [lenient, strict, bad, tooLong] = await Promise.all([
    runFtest(['simulate', `127.0.0.1:${port}`, '-n', '5', '--json']),
    runFtest(['simulate', `127.0.0.1:${port}`, '-n', '5', '--max-errors', '4']),
    runFtest(['simulate', `127.0.0.1:${port}`, '-c', '0']),
    runFtest(['simulate', `127.0.0.1:${port}`, '--duration', '2h']),
  ]);
  assert.equal(lenient.code, 0, lenient.stderr);
  assert.deepEqual(JSON.parse(lenient.stdout).errorsByKind, { ...NO_ERRORS, refused: 5 });

  assert.equal(strict.code, 1);
  assert.match(strict.stdout, /^errors: refused 5$/m);
  assert.match(strict.stderr, /5 errors, more than --max-errors 4/);

  assert.equal(bad.code, 1);
  assert.match(bad.stderr, /expected an integer from 1 to 10000/);
  assert.equal(tooLong.code, 1);
  assert.match(tooLong.stderr, /at most 60m/);
});

test('simulate --keepalive backs off redials when the target refuses, and reports the waits', async (t) => {
  const port = await closedPort(t);
  const summary = await simulate({ target: parseTarget(`127.0.0.1:${port}`), concurrency: 2, keepalive: true, durationMs: 1500 });
  assert.equal(summary.ok, 0);
  assert.equal(summary.errors, summary.errorsByKind.refused);
  // 10, 20, 40 … 1000 ms between dials: at most ~10 refusals per worker in 1.5 s (a tight loop
  // made thousands), and at least a few.
  assert.ok(summary.errors >= 4 && summary.errors <= 30, `${summary.errors} refusals in 1.5 s`);
  assert.ok(summary.redialBackoff.waits >= summary.errors - 2, `${summary.redialBackoff.waits} waits for ${summary.errors} refusals`);
  assert.ok(summary.redialBackoff.waitedMs > 0);

  const cli = await runFtest(['simulate', `127.0.0.1:${port}`, '--keepalive', '--duration', '1s', '-c', '1']);
  assert.equal(cli.code, 0, cli.stderr);
  assert.match(cli.stdout, /^redials backed off \d+ times after failed dials \(\d+\.\d\d s waited; 10 ms doubling to 1 s\)$/m);
});

test('redial delays double from 10 ms and stop at 1 s', async () => {
  const { redialDelayMs } = await import('./simulate.ts');
  assert.deepEqual([1, 2, 3, 4, 7, 8, 20].map(redialDelayMs), [10, 20, 40, 80, 640, 1000, 1000]);
});
