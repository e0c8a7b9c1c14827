// ReloadPipeline.apply (the admin API's path) over a real FileSource and a fleet that records what
// it is asked to do: the outcome of the content's own reconcile, the source's echo of the write
// skipped, an older want replaced before it started told so.
import { test } from 'node:test';
import type { TestContext } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { ListenerSpec } from '../proxy/index.ts';
import { FileSource } from './config-source/file-source.ts';
import { loadConfig } from './config/load.ts';
import { createDaemonLogger } from './logger.ts';
import { ReloadPipeline } from './reload-pipeline.ts';
import type { AppFleet } from './reload-pipeline.ts';
import { waitFor } from './testing.ts';

const logger = createDaemonLogger({ LOG_LEVEL: 'silent' });

/** Apps "start" at once, except those named in `failing`; `gate` holds starts until it resolves. */
class RecordingFleet implements AppFleet {
  readonly running = new Map<string, ListenerSpec>();
  readonly calls: string[] = [];
  failing = new Set<string>();
  gate: Promise<void> = Promise.resolve();
  specs(): Map<string, ListenerSpec> {
    return new Map(this.running);
  }
  async retire(name: string): Promise<void> {
    this.calls.push(`retire ${name}`);
    this.running.delete(name);
  }
  async rollout(name: string, spec: ListenerSpec): Promise<boolean> {
    this.calls.push(`rollout ${name}`);
    await this.gate;
    if (this.failing.has(name)) return false;
    this.running.set(name, spec);
    return true;
  }
  async start(name: string, spec: ListenerSpec): Promise<boolean> {
    this.calls.push(`start ${name}`);
    await this.gate;
    if (this.failing.has(name)) return false;
    this.running.set(name, spec);
    return true;
  }
  stopping(): boolean {
    return false;
  }
}

const doc = (...apps: [string, number][]) => JSON.stringify({ Apps: apps.map(([Name, port]) => ({ Name, Ports: [port], Targets: ['127.0.0.1:1'] })) });

/** A FileSource whose reads, while `held`, take the file's content and then wait for release(). */
class HeldReads extends FileSource {
  held = false;
  #waiting: (() => void)[] = [];
  readsHeld = 0;
  override async read(): ReturnType<FileSource['read']> {
    const snapshot = await super.read();
    if (this.held) {
      this.readsHeld++;
      await new Promise<void>((r) => this.#waiting.push(r));
    }
    return snapshot;
  }
  release(): void {
    this.held = false;
    for (const r of this.#waiting.splice(0)) r();
  }
}

async function setUp(t: TestContext, initial: string) {
  const dir = await mkdtemp(join(tmpdir(), 'fproxy-pipeline-'));
  t.after(() => rm(dir, { recursive: true, force: true }));
  const path = join(dir, 'config.json');
  await writeFile(path, initial);
  const source = new HeldReads(path, { logger, stabilityThresholdMs: 20 });
  const fleet = new RecordingFleet();
  const pipeline = new ReloadPipeline({ source, fleet, logger });
  t.after(() => pipeline.stopWatching());
  await pipeline.start(await loadConfig(Buffer.from(initial), dir, path));
  const write = async (text: string) => {
    await source.write(Buffer.from(text), undefined);
    return loadConfig(Buffer.from(text), dir, path);
  };
  return { fleet, pipeline, write, source };
}

test('apply resolves with its own reconcile: what started, rolled out, stopped, failed', async (t) => {
  const { fleet, pipeline, write } = await setUp(t, doc(['a', 1001], ['b', 1002]));
  const next = await write(doc(['a', 1003], ['c', 1004]));
  assert.deepEqual(await pipeline.apply(next), { applied: true, hash: next.hash, started: ['c'], rolledOut: ['a'], stopped: ['b'], failed: [] });
  fleet.failing.add('d');
  const bad = await write(doc(['a', 1003], ['c', 1004], ['d', 1005]));
  const outcome = await pipeline.apply(bad);
  assert.equal(outcome.applied, false);
  assert.deepEqual(outcome.failed, ['d']);
});

test('the source\'s change event for a write that failed to roll out does not retry it behind the writer\'s back', async (t) => {
  const { fleet, pipeline, write } = await setUp(t, doc(['a', 1001]));
  fleet.failing.add('a');
  const next = await write(doc(['a', 1002]));
  assert.equal((await pipeline.apply(next)).applied, false);
  const calls = fleet.calls.length;
  await pipeline.reload('the write\'s change event');
  assert.equal(fleet.calls.length, calls, `no new rollout: ${fleet.calls.slice(calls).join(', ')}`);
  // A different content from the source (a hand edit) is applied as usual.
  fleet.failing.clear();
  await write(doc(['a', 1003]));
  await pipeline.reload('hand edit');
  assert.equal(fleet.running.get('a')!.ports[0], 1003);
});

test('an apply replaced by a newer one before its reconcile started resolves as skipped; the newer applies', async (t) => {
  const { fleet, pipeline, write } = await setUp(t, doc(['a', 1001]));
  let open!: () => void;
  fleet.gate = new Promise((r) => (open = r));
  const first = pipeline.apply(await write(doc(['a', 1002])));
  await waitFor(() => fleet.calls.includes('rollout a'), 20_000, 'the first reconcile under way');
  const second = pipeline.apply(await write(doc(['a', 1003])));
  const third = pipeline.apply(await write(doc(['a', 1004])));
  open();
  assert.equal((await first).applied, true);
  const skipped = await second;
  assert.equal(skipped.applied, false);
  assert.match(skipped.skipped ?? '', /newer config replaced it/);
  assert.equal((await third).applied, true);
  assert.equal(fleet.running.get('a')!.ports[0], 1004);
});

test('a read of the source that an admin write overtook is not applied over it (no stale content rolled back in)', async (t) => {
  const { fleet, pipeline, write, source } = await setUp(t, doc(['a', 1001]));
  assert.equal((await pipeline.apply(await write(doc(['a', 1002])))).applied, true);
  // A change event's read takes the file as it is now (port 1002) and is slow to finish …
  source.held = true;
  const staleRead = pipeline.reload('a change event');
  await waitFor(() => source.readsHeld === 1, 20_000, 'the read under way');
  // … while the next admin write lands and is applied.
  assert.equal((await pipeline.apply(await write(doc(['a', 1003])))).applied, true);
  source.release();
  await staleRead;
  await pipeline.reload('settle');
  assert.equal(fleet.running.get('a')!.ports[0], 1003, `the stale read was applied over the newer write: ${fleet.calls.join(', ')}`);
  assert.equal(fleet.calls.filter((c) => c === 'rollout a').length, 2, 'one rollout per write, none for the stale read');
});
