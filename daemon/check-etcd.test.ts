// `fproxy check etcd://…` checks what a real etcd (on loopback) holds at the key: the same verdicts
// as for a file, and an etcd that does not answer is an error (never the daemon's disk copy).
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Etcd3 } from 'etcd3';
import { etcdMissing, startTestEtcd } from './config-source/etcd-testing.ts';
import { LastGood } from './config-source/last-good.ts';
import { runCheck } from './check.ts';

const KEY = '/fproxy/config';

async function check(url: string): Promise<{ code: number; log: string[]; error: string[] }> {
  const log: string[] = [];
  const error: string[] = [];
  const code = await runCheck(url, { log: (s) => log.push(s), error: (s) => error.push(s) });
  return { code, log, error };
}

test('fproxy check etcd://…: a good config, an invalid one, a missing key, etcd down', { skip: etcdMissing(), timeout: 60_000 }, async (t) => {
  const etcd = await startTestEtcd(t);
  const op = new Etcd3({ hosts: etcd.endpoint });
  t.after(() => op.close());
  // A last good copy on disk must not stand in for etcd: give the check one to be tempted by.
  const state = await mkdtemp(join(tmpdir(), 'fproxy-check-state-'));
  t.after(() => rm(state, { recursive: true, force: true }));
  const saved = process.env.FPROXY_STATE_DIR;
  process.env.FPROXY_STATE_DIR = state;
  t.after(() => {
    if (saved === undefined) delete process.env.FPROXY_STATE_DIR;
    else process.env.FPROXY_STATE_DIR = saved;
  });
  const url = `etcd://${etcd.endpoint}${KEY}`;

  const missing = await check(url);
  assert.equal(missing.code, 1);
  assert.match(missing.error.join('\n'), /does not exist: put the config there/);

  await op.put(KEY).value(JSON.stringify({ Apps: [{ Name: 'web', Ports: [5001], Targets: ['127.0.0.1:9001'] }] }));
  const good = await check(url);
  assert.equal(good.code, 0, good.error.join('\n'));
  assert.equal(good.log[0], `${url}: ok, 1 app`);
  assert.match(good.log[1] ?? '', /^web /);

  await op.put(KEY).value(JSON.stringify({ Apps: [{ Name: 'web', Ports: [5001], targets: ['127.0.0.1:9001'] }] }));
  const bad = await check(url);
  assert.equal(bad.code, 1);
  assert.match(bad.error.join('\n'), /Apps\[0\]\.targets: unknown key "targets": did you mean "Targets"\?/);

  await new LastGood(state, url).save(Buffer.from(JSON.stringify({ Apps: [] })), '1');
  await etcd.stop();
  const down = await check(url);
  assert.equal(down.code, 1);
  assert.match(down.error.join('\n'), /etcd did not answer \(the daemon would serve its last good copy from disk; check reads etcd only\)/);
});
