// Admin API writes on a daemon whose config source is etcd (a real etcd on loopback): the write
// goes through the source's compare-and-swap into the key, and is applied as from a file.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Etcd3 } from 'etcd3';
import { startEchoServers } from '../../ftest/echo-server.ts';
import { checkBalancer } from '../../ftest/balancer.ts';
import { etcdMissing, startTestEtcd } from '../config-source/etcd-testing.ts';
import { appConfig, startTestDaemon } from '../testing.ts';
import { ApplyResponseSchema } from './contract.ts';
import { call, TOKEN } from './testing-admin.ts';

const KEY = '/fproxy/config';

test('POST /apps/web/targets on an etcd-sourced daemon: the key holds the new target, the app serves it; a stale If-Match is 412', { skip: etcdMissing(), timeout: 120_000 }, async (t) => {
  const etcd = await startTestEtcd(t);
  const op = new Etcd3({ hosts: etcd.endpoint });
  t.after(() => op.close());
  const state = await mkdtemp(join(tmpdir(), 'fproxy-state-'));
  t.after(() => rm(state, { recursive: true, force: true }));
  const echo = await startEchoServers({ ports: [0, 0], host: '127.0.0.1', tag: true });
  t.after(() => echo.close());
  const [a, b] = echo.ports.map((p) => `127.0.0.1:${p}`);
  await op.put(KEY).value(JSON.stringify({ Apps: [appConfig('web', [0], [a!])] }));
  const d = await startTestDaemon(t, '{}', { env: { FPROXY_CONFIG_PATH: `etcd://${etcd.endpoint}${KEY}`, FPROXY_STATE_DIR: state, FPROXY_SPARE_LISTENERS: '0', FPROXY_ADMIN_TOKEN: TOKEN } });
  const [port] = await d.ports('web');
  await d.running('web');

  const etag = (await call(d, 'GET', '/config', { token: null })).headers.get('etag')!;
  const res = await call(d, 'POST', '/apps/web/targets', { body: { Address: b }, headers: { 'if-match': etag } });
  assert.equal(res.status, 200, res.text);
  ApplyResponseSchema.parse(res.body);
  const stored = JSON.parse((await op.get(KEY).string())!) as { Apps: { Targets: string[] }[] };
  assert.deepEqual(stored.Apps[0]!.Targets, [a, b]);
  const report = await checkBalancer({ target: { host: '127.0.0.1', port: port!, label: '' }, count: 4 });
  assert.ok(String(echo.ports[1]) in report.counts, JSON.stringify(report));

  const stale = await call(d, 'DELETE', `/apps/web/targets/${encodeURIComponent(b!)}`, { headers: { 'if-match': etag } });
  assert.equal(stale.status, 412);
  assert.deepEqual((JSON.parse((await op.get(KEY).string())!) as { Apps: { Targets: string[] }[] }).Apps[0]!.Targets, [a, b]);
});
