// The process logger's stdout: lines go out whole, and a stdout that is full, then gone, never
// hangs the process (pino's default retried both without end: a listener whose daemon was killed
// stayed stuck in a log call, holding its port).
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { once } from 'node:events';
import { closeSync, openSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { logLinesDropped, StdoutLines } from './log.ts';

const LOG_TS = fileURLToPath(new URL('./log.ts', import.meta.url));

function child(code: string) {
  return spawn(process.execPath, ['--input-type=module', '-e', `import { createLogger, StdoutLines } from ${JSON.stringify(LOG_TS)};\n${code}`], { stdio: ['ignore', 'pipe', 'pipe'] });
}

test('log lines reach stdout whole, one JSON object per line', async () => {
  const c = child(`const log = createLogger({ proc: 't' }, 'info'); for (let i = 0; i < 200; i++) log.info({ i, pad: 'x'.repeat(500) }, 'line');`);
  let out = '';
  c.stdout.setEncoding('utf8').on('data', (d: string) => (out += d));
  const [code] = await once(c, 'exit');
  assert.equal(code, 0);
  const lines = out.trim().split('\n').map((l) => JSON.parse(l) as { i: number; proc: string });
  assert.deepEqual(lines.map((l) => l.i), Array.from({ length: 200 }, (_, i) => i));
  assert.equal(lines[0]!.proc, 't');
});

/** Logs 1 KiB lines for 3 s, never touching process.stdout, then reports on stderr and exits by itself. */
const LOG_FOR_3S = `
    const out = new StdoutLines();
    const log = createLogger({ proc: 't' }, 'info', out);
    const end = Date.now() + 3000;
    let ticks = 0;
    const timer = setInterval(() => ticks++, 50);
    const spin = () => {
      for (let i = 0; i < 50; i++) log.info({ pad: 'x'.repeat(1024) }, 'line');
      if (Date.now() < end) return setImmediate(spin);
      clearInterval(timer);
      process.stderr.write(JSON.stringify({ dropped: out.dropped, ticks }) + '\\n');
      process.exit(0);
    };
    spin();`;

/** Waits up to 30 s for the child's exit: its code, or 'hung'. */
async function exitOrHang(c: ReturnType<typeof child>): Promise<number | null | 'hung'> {
  let timer: NodeJS.Timeout | undefined;
  const hung = new Promise<'hung'>((r) => (timer = setTimeout(() => r('hung'), 30_000)));
  const verdict = await Promise.race([once(c, 'exit').then(([code]) => code as number | null), hung]);
  clearTimeout(timer);
  return verdict;
}

test('stdout full and never read, then closed: the process goes on and exits on its own', async (t) => {
  // The pipe fills within ~64 lines; the test closes its end after 1.5 s (EPIPE from then on).
  const c = child(LOG_FOR_3S);
  t.after(() => c.kill('SIGKILL'));
  c.stdout.pause();
  let err = '';
  c.stderr.setEncoding('utf8').on('data', (d: string) => (err += d));
  const closing = setTimeout(() => c.stdout.destroy(), 1500);
  const verdict = await exitOrHang(c);
  clearTimeout(closing);
  assert.notEqual(verdict, 'hung', 'the process hung in a log call');
  assert.equal(verdict, 0, `exit code; stderr: ${err}`);
  const report = JSON.parse(err.trim().split('\n').pop()!) as { dropped: number; ticks: number };
  t.diagnostic(`lines dropped: ${report.dropped}; timer ticks while logging: ${report.ticks}`);
  assert.ok(report.dropped > 0, 'lines were dropped rather than waited for');
  assert.ok(report.ticks > 0, 'the event loop ran while stdout was stuck');
});

test('stdout a blocking pipe, full and never read (fproxy listen | a stuck reader): lines are dropped past the backlog, the process exits', async (t) => {
  // Nothing in the child touches process.stdout, so fd 1 stays as the parent made it: blocking.
  // A write to it would wait for the reader for good unless the writer makes it non-blocking.
  const c = child(LOG_FOR_3S);
  t.after(() => c.kill('SIGKILL'));
  c.stdout.pause();
  let err = '';
  c.stderr.setEncoding('utf8').on('data', (d: string) => (err += d));
  const verdict = await exitOrHang(c);
  assert.notEqual(verdict, 'hung', 'the process hung in a log call');
  assert.equal(verdict, 0, `exit code; stderr: ${err}`);
  const report = JSON.parse(err.trim().split('\n').pop()!) as { dropped: number; ticks: number };
  assert.ok(report.dropped > 0, 'lines were dropped rather than waited for');
  assert.ok(report.ticks > 0, 'the event loop ran while stdout was stuck');
});

test('a slow reader (away 1.5 s, 600 KiB behind) gets every line, in order: lines wait for it without blocking the process', async (t) => {
  const c = child(`
    const out = new StdoutLines();
    const log = createLogger({ proc: 't' }, 'info', out);
    let ticks = 0;
    const timer = setInterval(() => ticks++, 20);
    let i = 0;
    const spin = () => {
      for (let k = 0; k < 50 && i < 600; k++, i++) log.info({ i, pad: 'x'.repeat(1000) }, 'line');
      if (i < 600) return setImmediate(spin);
      // Every line is handed over; exit once process.stdout has written them all.
      const done = () => {
        if (process.stdout.writableLength > 0) return setTimeout(done, 20);
        clearInterval(timer);
        process.stderr.write(JSON.stringify({ dropped: out.dropped, ticks }) + '\\n');
      };
      done();
    };
    spin();`);
  t.after(() => c.kill('SIGKILL'));
  c.stdout.pause();
  let out = '';
  let err = '';
  c.stderr.setEncoding('utf8').on('data', (d: string) => (err += d));
  setTimeout(() => c.stdout.setEncoding('utf8').on('data', (d: string) => (out += d)).resume(), 1500);
  const verdict = await exitOrHang(c);
  assert.equal(verdict, 0, `exit code; stderr: ${err}`);
  const report = JSON.parse(err.trim().split('\n').pop()!) as { dropped: number; ticks: number };
  assert.equal(report.dropped, 0, 'no line dropped');
  assert.ok(report.ticks > 0, 'the event loop ran while the reader was away');
  const lines = out.trim().split('\n').map((l) => JSON.parse(l) as { i: number });
  assert.deepEqual(lines.map((l) => l.i), Array.from({ length: 600 }, (_, i) => i));
});

test('dropped lines are counted per writer and for the whole process, over every writer it made', (t) => {
  // A listener makes a new logger (and writer) at start; the daemon shows the process's count.
  const fd = openSync(LOG_TS, 'r'); // writing to it fails (EBADF): a broken stdout
  t.after(() => closeSync(fd));
  const before = logLinesDropped();
  const first = new StdoutLines(fd);
  const second = new StdoutLines(fd);
  first.write('a\n');
  first.write('b\n');
  second.write('c\n');
  assert.equal(first.dropped, 2);
  assert.equal(second.dropped, 1);
  assert.equal(logLinesDropped() - before, 3);
});
