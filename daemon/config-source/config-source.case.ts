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
}
