// Access log: one JSON line per closed connection when the app asks for it, with HAProxy-tcplog-like
// fields; to stdout through the listener's logger, or to FPROXY_ACCESS_LOG (reopened on SIGUSR1).
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { fork } from 'node:child_process';
import { once } from 'node:events';
import { readFileSync, renameSync, existsSync } from 'node:fs';
import { join } from 'node:path';
import type { FromListener } from './ipc/protocol.ts';
import { captureLogger, closedPort, exchange, listen, makeSpec, startEcho, tempDir, waitFor } from './testing.ts';

const FIELDS = ['app', 'client', 'sni', 'alpn', 'target', 'endpoint', 'attempts', 'outcome', 'code', 'bytesIn', 'bytesOut', 'connectMs', 'durationMs'];

test('AccessLog on: one info line per closed connection with every field', async (t) => {
  const echo = await startEcho('e');
  t.after(() => echo.close());
  const { logger, lines } = await captureLogger('info');
  const { port } = await listen(t, makeSpec([`127.0.0.1:${echo.port}`], { accessLog: true }), logger);
  assert.equal((await exchange(port, 'hello')).reply, 'e:hello');
  await waitFor(() => lines.some((l) => l.event === 'access'), 20_000, 'an access line');
  const line = lines.find((l) => l.event === 'access')!;
  for (const f of FIELDS) assert.ok(f in line, `field ${f} in ${JSON.stringify(line)}`);
  assert.equal(line.level, 30, 'at info');
  assert.equal(line.app, 'test-app');
  assert.match(String(line.client), /127\.0\.0\.1/);
  assert.equal(line.target, `127.0.0.1:${echo.port}`);
  assert.equal(line.endpoint, `127.0.0.1:${echo.port}`);
  assert.equal(line.outcome, 'ok');
  assert.equal(line.code, null);
  assert.equal(line.bytesIn, 5);
  assert.equal(line.bytesOut, 7);
  assert.equal(line.attempts, 1);
  assert.ok(typeof line.connectMs === 'number' && line.connectMs >= 0);
  assert.ok(typeof line.durationMs === 'number' && line.durationMs >= (line.connectMs as number));
});

test('a failed connection logs its outcome and code; AccessLog off logs nothing at info', async (t) => {
  const dead = await closedPort(t);
  const { logger, lines } = await captureLogger('info');
  const { port } = await listen(t, makeSpec([`127.0.0.1:${dead}`], { accessLog: true, connectTimeoutMs: 300 }), logger);
  await exchange(port, 'x');
  await waitFor(() => lines.some((l) => l.event === 'access'), 20_000, 'an access line');
  const line = lines.find((l) => l.event === 'access')!;
  assert.equal(line.outcome, 'connect-failed');
  assert.equal(line.code, 'ERR_CONNECT_EXHAUSTED');
  assert.equal(line.connectMs, null);
  assert.ok((line.attempts as number) >= 1);

  const echo = await startEcho('e');
  t.after(() => echo.close());
  const quiet = await captureLogger('info');
  const off = await listen(t, makeSpec([`127.0.0.1:${echo.port}`]), quiet.logger);
  assert.equal((await exchange(off.port, 'x')).reply, 'e:x');
  await waitFor(() => off.listener.activeConnections === 0, 20_000, 'session closed');
  assert.deepEqual(quiet.lines.filter((l) => l.event === 'access'), []);
});

test('FPROXY_ACCESS_LOG: lines go to the file, and SIGUSR1 reopens it after a rename (logrotate)', async (t) => {
  const echo = await startEcho('e');
  t.after(() => echo.close());
  const dir = await tempDir(t);
  const file = join(dir, 'access.log');
  const child = fork(new URL('./main.ts', import.meta.url), [], {
    execArgv: [], env: { PATH: process.env.PATH, LOG_LEVEL: 'info', FPROXY_ACCESS_LOG: file }, stdio: ['ignore', 'pipe', 'inherit', 'ipc'],
  });
  t.after(() => { if (child.exitCode === null && child.signalCode === null) child.kill('SIGKILL'); });
  let stdout = '';
  child.stdout!.on('data', (d: Buffer) => (stdout += d.toString()));
  const messages: FromListener[] = [];
  child.on('message', (m) => messages.push(m as FromListener));
  child.send({ v: 1, type: 'start', spec: makeSpec([`127.0.0.1:${echo.port}`], { accessLog: true }), generation: 4, worker: 1 });
  await waitFor(() => messages.some((m) => m.type === 'ready'), 10_000, 'ready');
  const ready = messages.find((m) => m.type === 'ready');
  const port = ready?.type === 'ready' ? ready.ports[0]! : 0;

  const readLines = (path: string) => (existsSync(path) ? readFileSync(path, 'utf8').split('\n').filter(Boolean).map((l) => JSON.parse(l) as Record<string, unknown>) : []);
  assert.equal((await exchange(port, 'one')).reply, 'e:one');
  await waitFor(() => readLines(file).length === 1, 20_000, 'a line in the file');
  const first = readLines(file)[0]!;
  assert.equal(first.msg, 'access');
  assert.equal(first.app, 'test-app');
  assert.equal(first.gen, 4);
  assert.equal(first.worker, 1);
  assert.equal(first.bytesIn, 3);

  renameSync(file, `${file}.1`);
  child.kill('SIGUSR1');
  // The signal is handled asynchronously: connect until a line lands in the new file.
  let sent = 1;
  await waitFor(async () => {
    assert.equal((await exchange(port, 'two')).reply, 'e:two');
    sent++;
    return readLines(file).length > 0;
  }, 5000, 'a line in the reopened file');
  await waitFor(() => readLines(file).length + readLines(`${file}.1`).length === sent, 20_000, 'every line written');
  assert.ok(readLines(file).length >= 1, 'after the reopen, lines go to the new file');
  assert.equal(readLines(`${file}.1`)[0]!.bytesIn, 3, 'the rotated file kept its lines');
  assert.ok(!stdout.includes('"msg":"access"'), 'no access line on stdout');
  child.send({ v: 1, type: 'drain' });
  await once(child, 'exit');
});
