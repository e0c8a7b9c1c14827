// `fproxy status` against a real daemon: the table, --json, --app, and a daemon that is not there.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { promisify } from 'node:util';
import { closedPort, exchange, startEcho } from '../proxy/testing.ts';
import { appConfig, waitFor as poll, startTestDaemon } from './testing.ts';
import type { StatsResponse } from './status-command.ts';

const FPROXY = new URL('../bin/fproxy.ts', import.meta.url).pathname;

async function status(...args: string[]): Promise<{ code: number; stdout: string; stderr: string }> {
  try {
    const { stdout, stderr } = await promisify(execFile)(process.execPath, [FPROXY, 'status', ...args], { env: { PATH: process.env.PATH }, timeout: 30_000 });
    return { code: 0, stdout, stderr };
  } catch (err) {
    const e = err as { code: number; stdout: string; stderr: string };
    return { code: e.code, stdout: e.stdout, stderr: e.stderr };
  }
}

test('fproxy status: one row per app with generation, state, workers, ports, active, conn/s, targets up/total', async (t) => {
  const echo = await startEcho('e');
  t.after(() => echo.close());
  const dead = await closedPort(t);
  const d = await startTestDaemon(t, { Apps: [appConfig('web', [0], [echo.port], { Workers: 2 }), appConfig('db', [0], [`127.0.0.1:${dead}`, `127.0.0.1:${echo.port}`])] });
  await poll(async () => (await d.apps()).filter((a) => a.state === 'running').length === 2, 15_000, 'both apps running');
  const [p1] = await d.ports('web');
  const [p2] = await d.ports('db');
  // Rates come from the daemon's 1 s samples: keep some traffic going until one shows it.
  let sent = 0;
  await poll(async () => {
    assert.equal((await exchange(p1!, 'x')).reply, 'e:x');
    sent++;
    const stats = JSON.parse((await d.get('/stats')).body) as StatsResponse;
    return stats.apps.find((a) => a.name === 'web')!.connPerSec > 0;
  }, 10_000, 'a connection rate for web', 100);
  const admin = `127.0.0.1:${d.adminPort}`;

  const r = await status('--admin', admin);
  assert.equal(r.code, 0, r.stderr);
  const [header, ...rows] = r.stdout.trim().split('\n');
  assert.match(header!, /^APP\s+GEN\s+STATE\s+WORKERS\s+PORTS\s+ACTIVE\s+CONN\/S\s+TARGETS\s+LAST ERROR$/);
  const cells = Object.fromEntries(rows.map((row) => [row.split(/\s+/)[0], row.split(/\s+/)]));
  assert.deepEqual(cells.web?.slice(0, 8), ['web', '1', 'running', '2/2', String(p1), '0', cells.web![6], '1/1']);
  assert.ok(Number(cells.web![6]) > 0, 'connections/s over the last 10 s');
  assert.deepEqual(cells.db?.slice(0, 6), ['db', '1', 'running', '1/1', String(p2), '0']);

  const json = await status('--admin', admin, '--json');
  const stats = JSON.parse(json.stdout) as StatsResponse;
  const web = stats.apps.find((a) => a.name === 'web')!;
  assert.equal(web.connections, sent);
  assert.deepEqual(web.outcomes, { ok: sent });

  // One app: its targets with health and attempts by result (the dead one refuses).
  for (let i = 0; i < 4; i++) assert.equal((await exchange(p2!, 'y')).reply, 'e:y');
  const one = await status('--admin', admin, '--app', 'db');
  assert.equal(one.code, 0, one.stderr);
  const lines = one.stdout.split('\n');
  assert.match(lines[0]!, /^db: generation 1, running, 1\/1 workers/);
  const targetRow = (target: string) => lines.find((l) => l.startsWith(target))?.split(/\s+/);
  const deadRow = targetRow(`127.0.0.1:${dead}`)!;
  assert.equal(deadRow[1], 'failing', 'every recent attempt on it failed');
  assert.ok(Number(deadRow[4]) >= 1, 'refused attempts counted');
  assert.deepEqual(targetRow(`127.0.0.1:${echo.port}`)!.slice(1, 4), ['up', '0', '4']);
  assert.ok(lines.includes('connections by outcome: ok=4'));

  const missing = await status('--admin', admin, '--app', 'nope');
  assert.equal(missing.code, 1);
  assert.match(missing.stderr, /No app named "nope"; apps: db, web/);
});

test('fproxy status with no daemon: a clear message and exit 1', async (t) => {
  const port = await closedPort(t);
  const r = await status('--admin', `127.0.0.1:${port}`);
  assert.equal(r.code, 1);
  assert.equal(r.stdout, '');
  assert.match(r.stderr, new RegExp(`fproxy daemon is not running at 127\\.0\\.0\\.1:${port} \\(nothing listens there\\)`));
  const bad = await status('--admin', 'nonsense');
  assert.equal(bad.code, 2);
  assert.match(bad.stderr, /Invalid --admin \/ FPROXY_ADMIN_ADDR "nonsense"/);
});
