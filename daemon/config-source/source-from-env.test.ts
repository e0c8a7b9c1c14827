// sourceFromEnv: FPROXY_CONFIG_PATH and the FPROXY_ETCD_* variables → a config source, or a clear error.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { resolve } from 'node:path';
import { createDaemonLogger } from '../logger.ts';
import { EtcdSource } from './etcd-source.ts';
import { FileSource } from './file-source.ts';
import { sourceFromEnv } from './source-from-env.ts';

const logger = createDaemonLogger({ LOG_LEVEL: 'silent' });

test('a path is a FileSource, an etcd:// URL an EtcdSource', () => {
  const file = sourceFromEnv('config.json', logger, {});
  assert.ok(file instanceof FileSource);
  assert.equal(file.describe(), resolve('config.json'));
  assert.equal(file.status().kind, 'file');
  const etcd = sourceFromEnv('etcd://10.0.0.1:2379,10.0.0.2:2379/fproxy/config', logger, { FPROXY_STATE_DIR: '/tmp/x', FPROXY_ETCD_USER: 'u', FPROXY_ETCD_PASSWORD: 'p', FPROXY_ETCD_KEEPALIVE_MS: '5000' });
  assert.ok(etcd instanceof EtcdSource);
  assert.equal(etcd.describe(), 'etcd://10.0.0.1:2379,10.0.0.2:2379/fproxy/config');
  assert.deepEqual({ kind: etcd.status().kind, connected: etcd.status().connected, servingFrom: etcd.status().servingFrom }, { kind: 'etcd', connected: false, servingFrom: null });
  (etcd as EtcdSource).close();
});

test('bad etcd settings are coded errors naming the variable and the fix', () => {
  const cases: [string, NodeJS.ProcessEnv, string, RegExp][] = [
    ['etcd://host-without-port/fproxy/config', {}, 'ERR_CONFIG_PATH_INVALID', /Invalid FPROXY_CONFIG_PATH: .*etcd:\/\/host1:2379,host2:2379\/fproxy\/config/],
    ['etcd://h:2379/k', { FPROXY_ETCD_CERT: 'c.pem' }, 'ERR_ETCD_TLS_INVALID', /both FPROXY_ETCD_CERT and FPROXY_ETCD_KEY/],
    ['etcd://h:2379/k', { FPROXY_ETCD_CERT: 'c.pem', FPROXY_ETCD_KEY: 'k.pem' }, 'ERR_ETCD_TLS_INVALID', /need FPROXY_ETCD_CA/],
    ['etcd://h:2379/k', { FPROXY_ETCD_CA: '/nonexistent/ca.pem' }, 'ERR_ETCD_TLS_INVALID', /Cannot set up the etcd client .*\/nonexistent\/ca\.pem/],
    ['etcd://h:2379/k', { FPROXY_ETCD_USER: 'u' }, 'ERR_ETCD_AUTH_INVALID', /both FPROXY_ETCD_USER and FPROXY_ETCD_PASSWORD/],
    ['etcd://h:2379/k', { FPROXY_ETCD_RETRY_MAX_MS: 'soon' }, 'ERR_ETCD_OPTION_INVALID', /Invalid FPROXY_ETCD_RETRY_MAX_MS "soon"/],
  ];
  for (const [url, env, code, message] of cases) {
    assert.throws(() => sourceFromEnv(url, logger, env), (err: Error & { code?: string }) => {
      assert.equal(err.code, code, `${url} ${JSON.stringify(env)}`);
      assert.match(err.message, message);
      return true;
    });
  }
});
