import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { pino } from 'pino';
import { ensureMigrateReq, parseMigrateReqMode } from './migrate-req.ts';

test('ensureMigrateReq turns the sysctl on, leaves it on, and warns where it cannot', async (t) => {
  const dir = await mkdtemp(join(tmpdir(), 'fproxy-migrate-'));
  t.after(() => rm(dir, { recursive: true, force: true }));
  const lines: { level: number; msg: string }[] = [];
  const logger = pino({ level: 'info' }, { write: (s: string) => void lines.push(JSON.parse(s)) });
  const file = join(dir, 'tcp_migrate_req');

  await writeFile(file, '0\n');
  assert.deepEqual(await ensureMigrateReq(logger, file), { enabled: true, changed: true });
  assert.equal((await readFile(file, 'utf8')).trim(), '1');

  assert.deepEqual(await ensureMigrateReq(logger, file), { enabled: true, changed: false });

  const missing = await ensureMigrateReq(logger, join(dir, 'absent'));
  assert.equal(missing.enabled, false);
  assert.match(missing.reason!, /ENOENT.*5\.14/);

  // A directory reads as EISDIR: still a warning, never a crash.
  const notFile = await ensureMigrateReq(logger, dir);
  assert.equal(notFile.enabled, false);
  assert.equal(lines.filter((l) => l.level === 40).length, 2, 'one warning per failure');
});

test('FPROXY_MIGRATE_REQ=leave only reads the sysctl; a bad value is a clear error', async (t) => {
  const dir = await mkdtemp(join(tmpdir(), 'fproxy-migrate-'));
  t.after(() => rm(dir, { recursive: true, force: true }));
  const logger = pino({ level: 'silent' });
  const file = join(dir, 'tcp_migrate_req');
  await writeFile(file, '0\n');
  const left = await ensureMigrateReq(logger, file, parseMigrateReqMode('leave'));
  assert.deepEqual({ enabled: left.enabled, changed: left.changed }, { enabled: false, changed: false });
  assert.match(left.reason!, /FPROXY_MIGRATE_REQ=leave/);
  assert.equal((await readFile(file, 'utf8')).trim(), '0', 'untouched');
  await writeFile(file, '1\n');
  assert.deepEqual(await ensureMigrateReq(logger, file, parseMigrateReqMode('leave')), { enabled: true, changed: false });
  assert.deepEqual(parseMigrateReqMode(undefined), { write: true });
  assert.deepEqual(parseMigrateReqMode('set'), { write: true });
  assert.throws(() => parseMigrateReqMode('on'), { code: 'ERR_MIGRATE_REQ_INVALID', message: /Invalid FPROXY_MIGRATE_REQ "on": use "set".*or "leave"/ });
});
