// ConfigWriter over a real FileSource, with the apply step as a plain function (the daemon's
// reconcile is covered end to end in admin-api.test.ts): If-Match, validation, restore on failure.
import { test } from 'node:test';
import type { TestContext } from 'node:test';
import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { FileSource } from '../config-source/file-source.ts';
import type { LoadedConfig } from '../config/load.ts';
import { createDaemonLogger } from '../logger.ts';
import type { ApplyOutcome } from '../reload-pipeline.ts';
import { addTarget, editableDocument, formatConfig } from './config-edit.ts';
import { ConfigWriter, etagMatches } from './config-writer.ts';

const logger = createDaemonLogger({ LOG_LEVEL: 'silent' });
const ORIGINAL = '{"Apps": [{"Name": "web", "Ports": [1], "Targets": ["h:1"]}]}';

async function writer(t: TestContext, outcome: (loaded: LoadedConfig) => ApplyOutcome): Promise<{ w: ConfigWriter; path: string; applied: string[] }> {
  const dir = await mkdtemp(join(tmpdir(), 'fproxy-writer-'));
  t.after(() => rm(dir, { recursive: true, force: true }));
  const path = join(dir, 'config.json');
  await writeFile(path, ORIGINAL);
  const applied: string[] = [];
  const w = new ConfigWriter({
    source: new FileSource(path, { logger }),
    logger,
    apply: async (loaded) => {
      applied.push(loaded.hash);
      return outcome(loaded);
    },
    app: (name) => ({ generation: 7, error: `${name} could not bind` }),
  });
  return { w, path, applied };
}

const add = (address: string) => (stored: { value: unknown }) => formatConfig(addTarget(editableDocument(stored.value), 'web', { Address: address }));
const ok = (loaded: LoadedConfig): ApplyOutcome => ({ applied: true, hash: loaded.hash, started: [], rolledOut: ['web'], stopped: [], failed: [] });
const sha = (text: string) => createHash('sha256').update(text).digest('hex');

test('etagMatches: the quoted or bare hash, a weak tag, one of a list, or *', () => {
  for (const header of ['"abc"', 'abc', 'W/"abc"', '"x", "abc"', '*']) assert.ok(etagMatches(header, 'abc'), header);
  for (const header of ['"abd"', '', '"ab"']) assert.ok(!etagMatches(header, 'abc'), header);
});

test('a write stores the formatted document, applies it, and answers with the generation and hash', async (t) => {
  const { w, path, applied } = await writer(t, ok);
  assert.equal((await w.read()).etag, `"${sha(ORIGINAL)}"`);
  const res = await w.write('add', add('h:2'), `"${sha(ORIGINAL)}"`);
  const text = await readFile(path, 'utf8');
  assert.deepEqual(res, { applied: true, hash: sha(text), apps: { web: { generation: 7 } }, stopped: [] });
  assert.deepEqual(applied, [sha(text)]);
  assert.deepEqual(JSON.parse(text).Apps[0].Targets, ['h:1', 'h:2']);
});

test('a stale If-Match is 412 and nothing is stored or applied', async (t) => {
  const { w, path, applied } = await writer(t, ok);
  await assert.rejects(w.write('add', add('h:2'), '"0123"'), (err: { status?: number; headers?: Record<string, string> }) => err.status === 412 && err.headers?.etag === `"${sha(ORIGINAL)}"`);
  assert.equal(await readFile(path, 'utf8'), ORIGINAL);
  assert.deepEqual(applied, []);
});

test('a failed rollout is 409 naming the app and its cause; the previous bytes are written back and applied again', async (t) => {
  const { w, path, applied } = await writer(t, (loaded) => (loaded.hash === sha(ORIGINAL) ? ok(loaded) : { ...ok(loaded), applied: false, failed: ['web'] }));
  await assert.rejects(w.write('add', add('h:2'), undefined), (err: { status?: number; code?: string; message?: string; extra?: { failed?: unknown } }) => {
    assert.equal(err.status, 409);
    assert.equal(err.code, 'ERR_ROLLOUT_FAILED');
    assert.match(err.message!, /app "web": web could not bind/);
    assert.deepEqual(err.extra?.failed, [{ app: 'web', message: 'web could not bind' }]);
    return true;
  });
  assert.equal(await readFile(path, 'utf8'), ORIGINAL, 'the previous bytes, exactly');
  assert.equal(applied.length, 2);
  assert.equal(applied[1], sha(ORIGINAL), 'the previous content applied again');
});

test('writes run one at a time: each edit starts from what the previous one stored', async (t) => {
  const { w, path } = await writer(t, ok);
  await Promise.all(Array.from({ length: 10 }, (_, i) => w.write(`add ${i}`, add(`h:${100 + i}`), undefined)));
  assert.equal(JSON.parse(await readFile(path, 'utf8')).Apps[0].Targets.length, 11);
});
