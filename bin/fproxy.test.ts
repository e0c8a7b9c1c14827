// The fproxy CLI as a user meets it: clean one-line errors (bad LOG_LEVEL, unknown command) and
// process titles that say what each process is.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { once } from 'node:events';
import { readFile, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { tempDir } from '../proxy/testing.ts';
import { appConfig, waitFor as poll, startTestDaemon } from '../daemon/testing.ts';

const FPROXY = fileURLToPath(new URL('./fproxy.ts', import.meta.url));

async function run(args: string[], env: Record<string, string> = {}): Promise<{ code: number | null; stdout: string; stderr: string }> {
  const child = spawn(process.execPath, [FPROXY, ...args], {
    stdio: ['ignore', 'pipe', 'pipe'],
    env: { PATH: process.env.PATH ?? '/usr/bin:/bin', FPROXY_ADMIN_ADDR: '127.0.0.1:0', ...env },
  });
  let stdout = '';
  let stderr = '';
  child.stdout.on('data', (d: Buffer) => (stdout += d.toString()));
  child.stderr.on('data', (d: Buffer) => (stderr += d.toString()));
  const timer = setTimeout(() => child.kill('SIGKILL'), 20_000);
  const [code] = await once(child, 'exit');
  clearTimeout(timer);
  return { code: code as number | null, stdout, stderr };
}

async function configFile(t: { after: (fn: () => unknown) => void }): Promise<string> {
  const dir = await tempDir(t);
  const path = join(dir, 'config.json');
  // Never bound: LOG_LEVEL is checked first.
  await writeFile(path, JSON.stringify({ Apps: [appConfig('a', [0], ['127.0.0.1:1'])] }));
  return path;
}

for (const [what, args] of [['the daemon', []], ['fproxy listen', ['listen', '--app', 'a', '--config']]] as const) {
  test(`an invalid LOG_LEVEL stops ${what} with one clean line and exit 1`, async (t) => {
    const path = await configFile(t);
    const result = await run(args.length > 0 ? [...args, path] : [], { LOG_LEVEL: 'verbose', FPROXY_CONFIG_PATH: path });
    assert.equal(result.code, 1);
    assert.equal(result.stderr.trim().split('\n').length, 1, result.stderr);
    assert.match(result.stderr, /Invalid LOG_LEVEL "verbose": use one of fatal, error, warn, info, debug, trace, silent/);
    assert.doesNotMatch(result.stderr + result.stdout, /^\s+at /m, 'no stack trace');
  });
}

test('an unknown command is named, with the closest one', async () => {
  const chek = await run(['chek']);
  assert.equal(chek.code, 1);
  assert.match(chek.stderr, /^fproxy: unknown command 'chek' \(did you mean 'check'\?\)/);
  const other = await run(['frobnicate']);
  assert.equal(other.code, 1);
  assert.match(other.stderr, /^fproxy: unknown command 'frobnicate'; commands: run, check, .*listen/);
  assert.doesNotMatch(chek.stderr + other.stderr, /too many arguments/);
});

test('ps shows "fproxy: daemon" and "fproxy: listener app=NAME gen=N worker=W"', { skip: process.platform === 'linux' ? false : '/proc/PID/cmdline is Linux only' }, async (t) => {
  const d = await startTestDaemon(t, { Apps: [appConfig('web', [0], ['127.0.0.1:1'], { Workers: 2 })] });
  const app = await poll(async () => {
    const a = await d.app('web');
    return a?.state === 'running' && a.pids.length === 2 ? a : undefined;
  }, 10_000, 'two workers');
  const title = async (pid: number) => (await readFile(`/proc/${pid}/cmdline`, 'utf8')).replaceAll('\0', ' ').trim();
  assert.equal(await title(d.pid), 'fproxy: daemon');
  const titles = (await Promise.all(app.pids.map(title))).sort();
  assert.deepEqual(titles, [`fproxy: listener app=web gen=${app.generation} worker=0`, `fproxy: listener app=web gen=${app.generation} worker=1`]);
});
