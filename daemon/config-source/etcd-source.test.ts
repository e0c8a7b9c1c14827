// EtcdSource against a real etcd (Debian etcd-server on loopback): the config source conformance
// suite, plus what only etcd does — compaction, a cut link, a start from the last good copy on disk.
import { after, test } from 'node:test';
import type { TestContext } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtemp, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { spawnSync } from 'node:child_process';
import { Etcd3 } from 'etcd3';
import { createDaemonLogger } from '../logger.ts';
import { waitFor } from '../testing.ts';
import { configSourceCases } from './config-source.case.ts';
import { EtcdSource, parseEtcdUrl } from './etcd-source.ts';
import { etcdMissing, startCuttableLink, startTestEtcd } from './etcd-testing.ts';
import { sourceFromEnv } from './source-from-env.ts';
import type { TestEtcd } from './etcd-testing.ts';

const logger = createDaemonLogger({ LOG_LEVEL: 'silent' });
const skip = etcdMissing();
let shared: Promise<TestEtcd> | undefined;
let keys = 0;

/** One etcd for the file (started by the first test that needs it, stopped after the last); a key per test. */
const cleanups: (() => unknown)[] = [];
after(async () => {
  for (const fn of cleanups.reverse()) await fn();
});
function etcd(): Promise<TestEtcd> {
  shared ??= startTestEtcd({ after: (fn) => cleanups.push(fn) });
  return shared;
}

async function operator(t: TestContext, endpoint: string): Promise<Etcd3> {
  const client = new Etcd3({ hosts: endpoint });
  t.after(() => client.close());
  return client;
}

async function stateDir(t: TestContext): Promise<string> {
  const dir = await mkdtemp(join(tmpdir(), 'fproxy-state-'));
  t.after(() => rm(dir, { recursive: true, force: true }));
  return dir;
}

async function newSource(t: TestContext, endpoint: string, key: string, dir?: string): Promise<EtcdSource> {
  const source = new EtcdSource(`etcd://${endpoint}${key}`, { logger, stateDir: dir ?? (await stateDir(t)), keepaliveMs: 1000, retryMaxMs: 200, callTimeoutMs: 1500 });
  t.after(() => source.close());
  return source;
}

test('parseEtcdUrl: members and key; anything else is a clear error', () => {
  assert.deepEqual(parseEtcdUrl('etcd://host1:2379,host2:2379/fproxy/config'), { hosts: ['host1:2379', 'host2:2379'], key: '/fproxy/config' });
  assert.deepEqual(parseEtcdUrl('etcd://[::1]:2379/k'), { hosts: ['[::1]:2379'], key: '/k' });
  for (const bad of ['etcd://host1/fproxy/config', 'etcd://host1:2379', 'etcd:///key', 'etcd://a:1,,b/x']) {
    assert.throws(() => parseEtcdUrl(bad), (err: Error & { code?: string; issues?: { message: string }[] }) => err.code === 'ERR_CONFIG_READ' && /etcd:\/\/host1:2379,host2:2379\/fproxy\/config/.test(err.issues?.[0]?.message ?? ''), bad);
  }
});

if (skip) test('EtcdSource against a real etcd', { skip }, () => {});
else {
  configSourceCases('EtcdSource', async (t, initial) => {
    const { endpoint } = await etcd();
    const key = `/fproxy-test/conformance-${++keys}`;
    const op = await operator(t, endpoint);
    await op.put(key).value(initial);
    return { source: await newSource(t, endpoint, key), write: async (bytes) => void (await op.put(key).value(bytes)) };
  });

  test('EtcdSource: version is the key\'s mod_revision; a missing key is ERR_CONFIG_READ saying how to put it there', async (t) => {
    const { endpoint } = await etcd();
    const key = `/fproxy-test/rev-${++keys}`;
    const op = await operator(t, endpoint);
    const source = await newSource(t, endpoint, key);
    await assert.rejects(source.read(), (err: Error & { code?: string; issues?: { message: string }[] }) => {
      assert.equal(err.code, 'ERR_CONFIG_READ');
      assert.match(err.issues?.[0]?.message ?? '', /does not exist.*etcdctl .*put/);
      return true;
    });
    await op.put(key).value('{"Apps": []}');
    const kv = (await op.get(key).exec()).kvs[0]!;
    assert.equal((await source.read()).version, kv.mod_revision);
    assert.equal(source.status().connected, true, 'etcd answered');
    assert.equal(source.status().servingFrom, 'etcd');
  });

  test('EtcdSource: a watch whose start revision was compacted re-reads, signals, and keeps watching', async (t) => {
    const { endpoint } = await etcd();
    const key = `/fproxy-test/compact-${++keys}`;
    const op = await operator(t, endpoint);
    await op.put(key).value('{"Apps": [0]}');
    const source = await newSource(t, endpoint, key);
    await source.read();
    for (let i = 1; i <= 3; i++) await op.put(key).value(`{"Apps": [${i}]}`);
    const head = (await op.get(key).exec()).header.revision;
    await op.kv.compact({ revision: head, physical: true });
    const reasons: string[] = [];
    const unwatch = await source.watch((r) => reasons.push(r));
    t.after(unwatch);
    await waitFor(() => reasons.length > 0, 10_000, 'a change signalled after the compacted watch');
    assert.equal((await source.read()).bytes.toString(), '{"Apps": [3]}');
    const before = reasons.length;
    await op.put(key).value('{"Apps": [4]}');
    await waitFor(() => reasons.length > before && source.status().connected, 10_000, 'the re-created watch reports the next put');
    assert.equal((await source.read()).bytes.toString(), '{"Apps": [4]}');
  });

  test('EtcdSource: writes made while the link is cut are reported once it is back; status shows the outage', async (t) => {
    const { endpoint } = await etcd();
    const link = await startCuttableLink(t, endpoint);
    const key = `/fproxy-test/cut-${++keys}`;
    const op = await operator(t, endpoint);
    await op.put(key).value('{"Apps": [0]}');
    const source = await newSource(t, link.endpoint, key);
    await source.read();
    const reasons: string[] = [];
    const unwatch = await source.watch((r) => reasons.push(r));
    t.after(unwatch);
    await waitFor(() => source.status().connected, 10_000, 'watch connected');
    link.cut();
    await waitFor(() => !source.status().connected, 10_000, 'status says disconnected');
    await op.put(key).value('{"Apps": [1]}');
    await op.put(key).value('{"Apps": [2]}');
    const during = source.status();
    assert.equal(during.connected, false);
    assert.ok(during.disconnectedSince !== null && (during.staleMs ?? -1) >= 0, JSON.stringify(during));
    const before = reasons.length;
    link.restore();
    await waitFor(() => source.status().connected && reasons.length > before, 15_000, 'reconnected and signalled');
    assert.equal((await source.read()).bytes.toString(), '{"Apps": [2]}');
    assert.equal(source.status().staleMs, 0);
  });

  test('EtcdSource: applied() keeps the config on disk; unreachable etcd serves that copy, then converges when etcd answers', async (t) => {
    const { endpoint } = await etcd();
    const link = await startCuttableLink(t, endpoint);
    const key = `/fproxy-test/disk-${++keys}`;
    const op = await operator(t, endpoint);
    await op.put(key).value('{"Apps": ["good"]}');
    const dir = await stateDir(t);
    const first = await newSource(t, link.endpoint, key, dir);
    const snap = await first.read();
    await first.applied(snap);
    const saved = JSON.parse(await readFile(join(dir, 'last-good.json'), 'utf8'));
    assert.equal(saved.version, snap.version);
    assert.equal(saved.config, '{"Apps": ["good"]}');

    link.cut();
    const second = await newSource(t, link.endpoint, key, dir);
    const fromDisk = await second.read();
    assert.equal(fromDisk.bytes.toString(), '{"Apps": ["good"]}');
    assert.equal(fromDisk.version, snap.version);
    assert.deepEqual({ ...second.status(), disconnectedSince: null, staleMs: null }, { kind: 'etcd', connected: false, revision: snap.version, servingFrom: 'disk', lastContactAt: saved.savedAt, disconnectedSince: null, staleMs: null });
    assert.ok((second.status().staleMs ?? -1) >= 0, 'staleness counts from when the copy was saved');
    // Another source's copy (another key) is never served.
    const other = await newSource(t, link.endpoint, `${key}-other`, dir);
    await assert.rejects(other.read(), (err: Error & { code?: string; issues?: { message: string }[] }) => err.code === 'ERR_CONFIG_READ' && /no last good copy/.test(err.issues?.[0]?.message ?? ''));

    await op.put(key).value('{"Apps": ["newer"]}');
    const reasons: string[] = [];
    const unwatch = await second.watch((r) => reasons.push(r));
    t.after(unwatch);
    link.restore();
    await waitFor(() => reasons.length > 0, 15_000, 'a change signalled once etcd answers');
    assert.equal((await second.read()).bytes.toString(), '{"Apps": ["newer"]}');
    assert.equal(second.status().servingFrom, 'etcd');
  });

  test('EtcdSource: write() with a stale version is ERR_CONFIG_CONFLICT naming the current one; an unreachable etcd is ERR_CONFIG_WRITE', async (t) => {
    const { endpoint } = await etcd();
    const link = await startCuttableLink(t, endpoint);
    const key = `/fproxy-test/write-${++keys}`;
    const op = await operator(t, endpoint);
    await op.put(key).value('{"Apps": []}');
    const source = await newSource(t, link.endpoint, key);
    const { version } = await source.read();
    const written = await source.write(Buffer.from('{"Apps": [1]}'), version);
    assert.equal(written.version, (await op.get(key).exec()).kvs[0]!.mod_revision);
    await assert.rejects(source.write(Buffer.from('{"Apps": [2]}'), version), (err: Error & { code?: string }) => err.code === 'ERR_CONFIG_CONFLICT' && err.message.includes(`its version is ${written.version}, not ${version}`));
    link.cut();
    await assert.rejects(source.write(Buffer.from('{"Apps": [3]}'), written.version), (err: Error & { code?: string }) => err.code === 'ERR_CONFIG_WRITE' && /Cannot write the config to etcd key .*quorum/.test(err.message));
    assert.equal((await op.get(key).string()), '{"Apps": [1]}');
  });
}

if (!skip) {
  test('EtcdSource over TLS with a client certificate (FPROXY_ETCD_CA/_CERT/_KEY); without one etcd refuses', async (t) => {
    const dir = await stateDir(t);
    const cert = (name: string, san: string): { cert: string; key: string } => {
      const files = { cert: join(dir, `${name}.crt`), key: join(dir, `${name}.key`) };
      const r = spawnSync('openssl', ['req', '-x509', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:prime256v1', '-nodes', '-days', '2', '-subj', `/CN=${name}`, '-addext', `subjectAltName=${san}`, '-keyout', files.key, '-out', files.cert], { encoding: 'utf8' });
      assert.equal(r.status, 0, r.stderr);
      return files;
    };
    const server = cert('etcd', 'IP:127.0.0.1');
    const client = cert('fproxy', 'DNS:fproxy');
    const cleanups: (() => unknown)[] = [];
    t.after(async () => {
      for (const fn of cleanups.reverse()) await fn();
    });
    const etcd = await startTestEtcd({ after: (fn) => cleanups.push(fn) }, { tls: { cert: server.cert, key: server.key, clientCa: client.cert } });
    const url = `etcd://${etcd.endpoint}/fproxy/tls`;
    const env = { FPROXY_STATE_DIR: dir, FPROXY_ETCD_CA: server.cert, FPROXY_ETCD_CERT: client.cert, FPROXY_ETCD_KEY: client.key };
    const source = sourceFromEnv(url, logger, env) as EtcdSource;
    t.after(() => source.close());
    await waitFor(() => source.write(Buffer.from('{"Apps": ["tls"]}'), undefined).then(() => true, () => false), 15_000, 'a write over TLS');
    assert.equal((await source.read()).bytes.toString(), '{"Apps": ["tls"]}');
    const anonymous = sourceFromEnv(url, logger, { FPROXY_STATE_DIR: dir, FPROXY_ETCD_CA: server.cert }) as EtcdSource;
    t.after(() => anonymous.close());
    await assert.rejects(anonymous.write(Buffer.from('{}'), undefined), (err: Error & { code?: string }) => err.code === 'ERR_CONFIG_WRITE');
  });

  test('EtcdSource with etcd auth (FPROXY_ETCD_USER/_PASSWORD); a wrong password is a clear error', async (t) => {
    const { endpoint } = await startTestEtcd(t);
    const op = await operator(t, endpoint);
    await waitFor(() => op.put('/fproxy/auth').value('{"Apps": ["auth"]}').exec().then(() => true, () => false), 15_000, 'etcd up');
    await op.role('root').create();
    await op.user('root').create('s3cret');
    await op.user('root').addRole('root');
    await op.auth.authEnable();
    const dir = await stateDir(t);
    const url = `etcd://${endpoint}/fproxy/auth`;
    const source = sourceFromEnv(url, logger, { FPROXY_STATE_DIR: dir, FPROXY_ETCD_USER: 'root', FPROXY_ETCD_PASSWORD: 's3cret' }) as EtcdSource;
    t.after(() => source.close());
    assert.equal((await source.read()).bytes.toString(), '{"Apps": ["auth"]}');
    const wrong = sourceFromEnv(url, logger, { FPROXY_STATE_DIR: dir, FPROXY_ETCD_USER: 'root', FPROXY_ETCD_PASSWORD: 'nope' }) as EtcdSource;
    t.after(() => wrong.close());
    await assert.rejects(wrong.read(), (err: Error & { code?: string; issues?: { message: string }[] }) => err.code === 'ERR_CONFIG_READ' && /authentication failed/i.test(err.issues?.[0]?.message ?? ''));
  });
}
