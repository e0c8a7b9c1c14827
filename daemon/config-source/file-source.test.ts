// FileSource: the config source conformance suite, plus what only a file does.
import { test } from 'node:test';
import type { TestContext } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtemp, readdir, rm, stat, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createDaemonLogger } from '../logger.ts';
import { writeConfig } from '../testing.ts';
import { configSourceCases } from './config-source.case.ts';
import { FileSource } from './file-source.ts';

const logger = createDaemonLogger({ LOG_LEVEL: 'silent' });

async function tempDir(t: TestContext): Promise<string> {
  const dir = await mkdtemp(join(tmpdir(), 'fproxy-source-'));
  t.after(() => rm(dir, { recursive: true, force: true }));
  return dir;
}

configSourceCases('FileSource (in-place writes)', async (t, initial) => {
  const path = join(await tempDir(t), 'config.json');
  await writeFile(path, initial);
  return { source: new FileSource(path, { logger, stabilityThresholdMs: 50 }), write: (bytes) => writeFile(path, bytes) };
});

configSourceCases('FileSource (atomic saves: write a temp file, rename it over)', async (t, initial) => {
  const path = join(await tempDir(t), 'config.json');
  await writeFile(path, initial);
  return { source: new FileSource(path, { logger, stabilityThresholdMs: 50 }), write: (bytes) => writeConfig(path, bytes.toString(), 'atomic') };
});

test('FileSource: the base directory is the file\'s; a missing file is ERR_CONFIG_READ naming the path and the fix', async (t) => {
  const dir = await tempDir(t);
  const source = new FileSource(join(dir, 'nope.json'), { logger });
  assert.equal(source.describe(), join(dir, 'nope.json'));
  await assert.rejects(source.read(), (err: Error & { code?: string; issues?: { message: string }[] }) => {
    assert.equal(err.code, 'ERR_CONFIG_READ');
    assert.match(err.message, /nope\.json/);
    assert.match(err.issues?.[0]?.message ?? '', /no such file/);
    return true;
  });
  await writeFile(join(dir, 'nope.json'), '{}');
  assert.equal((await source.read()).baseDir, dir);
});

test('FileSource.write: an atomic rename that keeps the file mode and leaves no temp file behind', async (t) => {
  const dir = await tempDir(t);
  const path = join(dir, 'config.json');
  await writeFile(path, '{"Apps": []}', { mode: 0o640 });
  const source = new FileSource(path, { logger });
  const before = (await stat(path)).ino;
  await source.write(Buffer.from('{"Apps": [1]}'), undefined);
  const after = await stat(path);
  assert.notEqual(after.ino, before, 'a new inode: renamed over, not written in place');
  assert.equal(after.mode & 0o777, 0o640);
  assert.deepEqual(await readdir(dir), ['config.json']);
});

test('FileSource.write into a directory it cannot write is ERR_CONFIG_WRITE naming the path', async (t) => {
  const source = new FileSource(join(await tempDir(t), 'no-such-dir', 'config.json'), { logger });
  await assert.rejects(source.write(Buffer.from('{}'), undefined), (err: { code?: string; message?: string }) => err.code === 'ERR_CONFIG_WRITE' && /no-such-dir/.test(err.message!));
});
