// `fproxy apps|targets|reload` as a user runs them (the real CLI process against a real daemon):
// output, exit codes, and the daemon's problem messages shown as they are.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { once } from 'node:events';
import { readFile } from 'node:fs/promises';
import { fileURLToPath } from 'node:url';
import { startEchoServers } from '../../ftest/echo-server.ts';
import { appConfig, startTestDaemon } from '../testing.ts';
import { TOKEN } from '../admin/testing-admin.ts';
import { closedPort } from '../../proxy/testing.ts';

const FPROXY = fileURLToPath(new URL('../../bin/fproxy.ts', import.meta.url));

async function fproxy(args: string[], env: Record<string, string>): Promise<{ code: number | null; stdout: string; stderr: string }> {
  const child = spawn(process.execPath, [FPROXY, ...args], { stdio: ['ignore', 'pipe', 'pipe'], env: { PATH: process.env.PATH ?? '/usr/bin:/bin', ...env } });
  let stdout = '';
  let stderr = '';
  child.stdout.on('data', (d: Buffer) => (stdout += d.toString()));
  child.stderr.on('data', (d: Buffer) => (stderr += d.toString()));
  const timer = setTimeout(() => child.kill('SIGKILL'), 60_000);
  const [code] = await once(child, 'exit');
  clearTimeout(timer);
  return { code: code as number | null, stdout, stderr };
}

test('fproxy targets add/drain/enable/rm, apps and reload against a running daemon', async (t) => {
  const echo = await startEchoServers({ ports: [0, 0], host: '127.0.0.1', tag: true });
  t.after(() => echo.close());
  const [a, b] = echo.ports.map((p) => `127.0.0.1:${p}`);
  const d = await startTestDaemon(t, { Apps: [appConfig('web', [0], [a!])] }, { env: { FPROXY_ADMIN_TOKEN: TOKEN } });
  await d.running('web');
  const env = { FPROXY_ADMIN_ADDR: `127.0.0.1:${d.adminPort}`, FPROXY_ADMIN_TOKEN: TOKEN };

  const added = await fproxy(['targets', 'add', 'web', b!, '--weight', '3'], env);
  assert.equal(added.code, 0, added.stderr);
  assert.match(added.stdout, new RegExp(`^added ${b} to web; now serving: web generation \\d+\\n$`));
  const doc = JSON.parse(await readFile(d.configPath, 'utf8')) as { Apps: { Targets: unknown[] }[] };
  assert.deepEqual(doc.Apps[0]!.Targets, [a, { Address: b, Weight: 3 }]);

  const dup = await fproxy(['targets', 'add', 'web', b!], env);
  assert.equal(dup.code, 1);
  assert.equal(dup.stderr, `fproxy: App "web" already has target ${b}: remove it first to change its options (409 ERR_TARGET_EXISTS)\n`);

  assert.equal((await fproxy(['targets', 'drain', 'web', b!], env)).code, 0);
  const apps = await fproxy(['apps'], env);
  assert.equal(apps.code, 0, apps.stderr);
  assert.match(apps.stdout, new RegExp(`^web  generation \\d+  running  ports \\d+`));
  assert.match(apps.stdout, new RegExp(`\\n  ${b!.replace(/\./g, '\\.')}  drain  `));
  assert.equal((await fproxy(['targets', 'enable', 'web', b!], env)).code, 0);
  const json = await fproxy(['apps', '--json'], { FPROXY_ADMIN_ADDR: `127.0.0.1:${d.adminPort}` });
  assert.equal((JSON.parse(json.stdout) as { name: string }[])[0]!.name, 'web', 'reads need no token');

  const rm = await fproxy(['targets', 'rm', 'web', b!], env);
  assert.equal(rm.code, 0, rm.stderr);
  assert.equal((await fproxy(['reload'], env)).code, 0);

  const bad = await fproxy(['targets', 'add', 'web', 'nope'], env);
  assert.equal(bad.code, 1);
  assert.match(bad.stderr, /^fproxy: Target address "nope" is not host:port: .* \(400 ERR_TARGET_INVALID\)\n$/);
  const noToken = await fproxy(['targets', 'add', 'web', b!], { FPROXY_ADMIN_ADDR: `127.0.0.1:${d.adminPort}` });
  assert.equal(noToken.code, 1);
  assert.match(noToken.stderr, /401 ERR_UNAUTHORIZED/);
  const badWeight = await fproxy(['targets', 'add', 'web', b!, '--weight', '0'], env);
  assert.notEqual(badWeight.code, 0);
  assert.match(badWeight.stderr, /use an integer from 1 to 100/);
});

test('fproxy apps with no daemon there: exit 2 and says where it looked', async (t) => {
  const port = await closedPort(t);
  const res = await fproxy(['apps', '--admin', `127.0.0.1:${port}`], {});
  assert.equal(res.code, 2);
  assert.match(res.stderr, new RegExp(`^fproxy: cannot reach the daemon's admin endpoint at http://127\\.0\\.0\\.1:${port}: ECONNREFUSED`));
});
