// The conformance suite every ConfigSource passes (file today, etcd later): what the reload
// pipeline relies on, asserted through the interface only.
import { test } from 'node:test';
import type { TestContext } from 'node:test';
import assert from 'node:assert/strict';
import { isAbsolute } from 'node:path';
import { waitFor } from '../testing.ts';
import type { ConfigSource } from './config-source.ts';

export interface SourceUnderTest {
  readonly source: ConfigSource;
  /** Replace the content the way the source's users do (for a file: an editor's save). */
  write(bytes: Buffer): Promise<void>;
}

export function configSourceCases(name: string, make: (t: TestContext, initial: Buffer) => Promise<SourceUnderTest>): void {
  test(`${name}: read() returns the current bytes, an absolute base directory and a version that follows the content`, async (t) => {
    const { source, write } = await make(t, Buffer.from('{"Apps": []}'));
    const first = await source.read();
    assert.equal(first.bytes.toString(), '{"Apps": []}');
    assert.ok(isAbsolute(first.baseDir), first.baseDir);
    assert.equal((await source.read()).version, first.version, 'same content, same version');
    await write(Buffer.from('{"Apps": [1]}'));
    const second = await source.read();
    assert.equal(second.bytes.toString(), '{"Apps": [1]}');
    assert.notEqual(second.version, first.version);
    assert.ok(source.describe().length > 0);
  });

  test(`${name}: watch() reports a change made after it resolves; unwatch() resolves`, async (t) => {
    const { source, write } = await make(t, Buffer.from('{"Apps": []}'));
    const reasons: string[] = [];
    const unwatch = await source.watch((reason) => reasons.push(reason));
    t.after(unwatch);
    await write(Buffer.from('{"Apps": [2]}'));
    await waitFor(() => reasons.length > 0, 10_000, 'a change reported');
    assert.equal(typeof reasons[0], 'string');
    assert.equal((await source.read()).bytes.toString(), '{"Apps": [2]}');
    await unwatch();
  });

  test(`${name}: write() replaces the document and returns its new version; a stale ifVersion is ERR_CONFIG_CONFLICT and writes nothing`, async (t) => {
    const { source } = await make(t, Buffer.from('{"Apps": []}'));
    const first = await source.read();
    const written = await source.write(Buffer.from('{"Apps": [3]}'), first.version);
    assert.equal(written.bytes.toString(), '{"Apps": [3]}');
    assert.notEqual(written.version, first.version);
    const after = await source.read();
    assert.equal(after.bytes.toString(), '{"Apps": [3]}');
    assert.equal(after.version, written.version, 'the version write() returned is the one read() gives');
    await assert.rejects(source.write(Buffer.from('{"Apps": [4]}'), first.version), (err: { code?: string; name?: string }) => err.code === 'ERR_CONFIG_CONFLICT' && err.name === 'ConfigSourceError');
    assert.equal((await source.read()).bytes.toString(), '{"Apps": [3]}', 'a conflicting write changed nothing');
    const unconditional = await source.write(Buffer.from('{"Apps": [5]}'), undefined);
    assert.equal((await source.read()).version, unconditional.version);
  });

  test(`${name}: of 10 concurrent writes with the same ifVersion exactly one wins`, async (t) => {
    const { source } = await make(t, Buffer.from('{"Apps": []}'));
    const { version } = await source.read();
    const results = await Promise.allSettled(Array.from({ length: 10 }, (_, i) => source.write(Buffer.from(`{"Apps": [${i}]}`), version)));
    assert.equal(results.filter((r) => r.status === 'fulfilled').length, 1);
    for (const r of results) if (r.status === 'rejected') assert.equal((r.reason as { code?: string }).code, 'ERR_CONFIG_CONFLICT');
  });

  test(`${name}: watch() reports a change made through write()`, async (t) => {
    const { source } = await make(t, Buffer.from('{"Apps": []}'));
    const reasons: string[] = [];
    const unwatch = await source.watch((reason) => reasons.push(reason));
    t.after(unwatch);
    await source.write(Buffer.from('{"Apps": [6]}'), undefined);
    await waitFor(() => reasons.length > 0, 10_000, 'a change reported');
    await unwatch();
  });
}
