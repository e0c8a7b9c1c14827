import { test } from 'node:test';
import assert from 'node:assert/strict';
import { echoRoundTrip, startFtest, startServer } from './cli-harness.ts';

test('ftest serve prints one line per port, echoes with the tag, and exits 0 on SIGTERM', async (t) => {
  const cli = startFtest(['serve', '0', '0', '--tag']);
  t.after(() => cli.kill());
  const lines = await cli.lines(2);
  const ports = lines.map((line) => {
    const match = /^listening 127\.0\.0\.1:(\d+) \[::1\]:(\d+)$/.exec(line);
    assert.ok(match, `unexpected line ${JSON.stringify(line)}`);
    assert.equal(match[1], match[2]);
    return Number(match[1]);
  });
  assert.notEqual(ports[0], ports[1]);
  for (const port of ports) {
    assert.equal((await echoRoundTrip(port, ['hel', 'lo'], { lockstep: true })).toString(), `${port}:hello`);
  }
  cli.kill('SIGTERM');
  const result = await cli.exited;
  assert.equal(result.code, 0, result.stderr);
});

test('ftest serve exits 0 on SIGINT', async (t) => {
  const cli = startFtest(['serve', '0', '--host', '::1']);
  t.after(() => cli.kill());
  const [line] = await cli.lines(1);
  assert.match(line!, /^listening \[::1\]:\d+$/);
  cli.kill('SIGINT');
  const result = await cli.exited;
  assert.equal(result.code, 0, `signal ${result.signal} stderr ${result.stderr}`);
});

test('ftest serve rejects a bad port with exit 1', async (t) => {
  const cli = startFtest(['serve', '70000']);
  t.after(() => cli.kill());
  const result = await cli.exited;
  assert.equal(result.code, 1);
  assert.match(result.stderr, /Invalid port "70000"/);
});

test('ftest serve on a port in use exits 1 and says so', async (t) => {
  const busy = await startServer(() => {});
  t.after(() => busy.close());
  const cli = startFtest(['serve', String(busy.port), '--host', '127.0.0.1']);
  t.after(() => cli.kill());
  const result = await cli.exited;
  assert.equal(result.code, 1);
  assert.match(result.stderr, new RegExp(`^ftest: Cannot listen on 127\\.0\\.0\\.1:${busy.port}: EADDRINUSE`));
});

test('ftest serve with a port given twice blames the repeated argument, not EADDRINUSE', async (t) => {
  const cli = startFtest(['serve', '24001', '24002', '24001']);
  t.after(() => cli.kill());
  const result = await cli.exited;
  assert.equal(result.code, 1);
  assert.match(result.stderr, /port 24001 is given twice: list each port once/);
  assert.doesNotMatch(result.stderr, /EADDRINUSE/);
});
