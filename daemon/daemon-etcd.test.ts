// The daemon with FPROXY_CONFIG_PATH=etcd://… against a real etcd on loopback: /status names the
// source, a burst of writes converges on the last one, an invalid write changes nothing, every applied config is kept on disk,
// losing etcd stops nothing, and a daemon started while etcd is down serves the copy from disk.
// (Many nodes, partitions and quorum loss: scripts/cluster.test.ts, in network namespaces.)
import { test } from 'node:test';
import type { TestContext } from 'node:test';
import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { mkdtemp, readFile, rm } from 'node:fs/promises';
import { connect, createServer } from 'node:net';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Etcd3 } from 'etcd3';
import { etcdMissing, startTestEtcd } from './config-source/etcd-testing.ts';
import { appConfig, startTestDaemon, waitFor } from './testing.ts';

const skip = etcdMissing();
const KEY = '/fproxy/config';

/** A target that answers its name and closes. */
async function namedTarget(t: TestContext, name: string): Promise<number> {
  const server = createServer((s) => s.end(`${name}\n`));
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', () => r()));
  t.after(() => new Promise<void>((r) => server.close(() => r())));
  return (server.address() as AddressInfo).port;
}

function ask(port: number): Promise<string> {
  return new Promise((resolve) => {
    const s = connect(port, '127.0.0.1');
    let text = '';
    s.setEncoding('utf8');
    s.on('data', (d: string) => (text += d));
    s.on('error', (err) => resolve(`error: ${err.message}`));
    s.on('end', () => resolve(text.trim()));
  });
}

const sha = (text: string): string => createHash('sha256').update(text).digest('hex');

test('daemon on an etcd source: burst → last write, invalid → kept, last good on disk, etcd lost → still serving, restart while down → serves from disk', { skip, timeout: 120_000 }, async (t) => {
  const etcd = await startTestEtcd(t);
  const op = new Etcd3({ hosts: etcd.endpoint });
  t.after(() => op.close());
  const state = await mkdtemp(join(tmpdir(), 'fproxy-state-'));
  t.after(() => rm(state, { recursive: true, force: true }));
  const [a, b] = [await namedTarget(t, 'A'), await namedTarget(t, 'B')];
  const config = (port: number): string => JSON.stringify({ Apps: [appConfig('web', [0], [port], { DrainTimeoutMs: 500 })] });
  await op.put(KEY).value(config(a));
  const env = { FPROXY_CONFIG_PATH: `etcd://${etcd.endpoint}${KEY}`, FPROXY_STATE_DIR: state, FPROXY_ETCD_KEEPALIVE_MS: '1000', FPROXY_ETCD_RETRY_MAX_MS: '300', FPROXY_SPARE_LISTENERS: '0' };

  const d = await startTestDaemon(t, '{}', { env });
  const [port] = await d.ports('web');
  assert.equal(await ask(port!), 'A');
  const up = await waitFor(async () => {
    const s = await d.status();
    return s.source.connected && s.source.revision !== null ? s : undefined;
  }, 10_000, 'source connected, the applied revision known');
  assert.equal(up.config.path, env.FPROXY_CONFIG_PATH);
  assert.deepEqual({ kind: up.source.kind, servingFrom: up.source.servingFrom, staleMs: up.source.staleMs }, { kind: 'etcd', servingFrom: 'etcd', staleMs: 0 });
  assert.equal(up.source.revision, (await op.get(KEY).exec()).kvs[0]!.mod_revision);

  // A burst: the daemon ends on the last write (reads coalesce, so some in between may be skipped).
  const last = config(b);
  for (const value of [config(b).replace('"Workers":1', '"Workers":1 '), config(a), config(a).replace('"Workers":1', '"Workers":1  '), last]) await op.put(KEY).value(value);
  await waitFor(async () => (await d.status()).config.hash === sha(last), 20_000, 'the last write of the burst applied');
  await waitFor(async () => (await ask(port!)) === 'B', 20_000, 'serving B');
  // An invalid write after it is reported and changes nothing.
  await op.put(KEY).value('{"Apps": [{"Name": "broken"');
  const rejected = await waitFor(async () => {
    const s = await d.status();
    return s.config.error !== null ? s : undefined;
  }, 20_000, 'the invalid write reported');
  assert.equal(rejected.config.hash, sha(last));
  assert.equal(await ask(port!), 'B');
  const saved = JSON.parse(await readFile(join(state, 'last-good.json'), 'utf8'));
  assert.equal(saved.config, last, 'the applied config is on disk, not the invalid one after it');

  // etcd gone: traffic goes on, status says how stale the config is.
  await etcd.stop();
  const down = await waitFor(async () => {
    const s = await d.status();
    return !s.source.connected && (s.source.staleMs ?? 0) > 0 ? s : undefined;
  }, 20_000, 'status: disconnected, with staleness');
  assert.ok(down.source.disconnectedSince !== null);
  assert.equal(await ask(port!), 'B');

  // A daemon (re)started while etcd is down serves the copy from disk and says so.
  d.child.kill('SIGTERM');
  await d.exited;
  const again = await startTestDaemon(t, '{}', { env });
  const [port2] = await again.ports('web');
  assert.equal(await ask(port2!), 'B');
  const s = await again.status();
  assert.deepEqual({ kind: s.source.kind, connected: s.source.connected, servingFrom: s.source.servingFrom, revision: s.source.revision }, { kind: 'etcd', connected: false, servingFrom: 'disk', revision: saved.version });
  assert.equal((await again.waitLog((l) => l.event === 'config-from-disk', 5000, 'the from-disk log line')).path, join(state, 'last-good.json'));
});
