import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import { mkdtempSync, rmSync, writeFileSync, mkdirSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { loadConfigFile } from './load.ts';
import { ConfigError } from './validate.ts';

let dir: string;

before(() => {
  dir = mkdtempSync(join(tmpdir(), 'fproxy-load-'));
  mkdirSync(join(dir, 'certs'));
  // Two self-signed pairs: "a" for the happy path, "b"'s key to mismatch with "a"'s certificate.
  for (const name of ['a', 'b']) {
    execFileSync('openssl', [
      'req', '-x509', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:prime256v1', '-nodes', '-days', '1',
      '-subj', `/CN=${name}.example.test`, '-keyout', join(dir, 'certs', `${name}-key.pem`), '-out', join(dir, 'certs', `${name}.pem`),
    ], { stdio: 'ignore' });
  }
  writeFileSync(join(dir, 'certs', 'junk.pem'), 'not a pem file\n');
});

after(() => rmSync(dir, { recursive: true, force: true }));

function write(name: string, content: unknown): string {
  const path = join(dir, name);
  writeFileSync(path, typeof content === 'string' ? content : JSON.stringify(content, null, 2));
  return path;
}

function terminating(certs: { Cert: string; Key: string }[]) {
  return { Apps: [{ Name: 'tls', Ports: [8443], Targets: ['127.0.0.1:9001'], Tls: { Mode: 'terminate', Certs: certs } }] };
}

async function rejection(path: string): Promise<ConfigError> {
  try {
    await loadConfigFile(path);
  } catch (err) {
    assert.ok(err instanceof ConfigError, `expected a ConfigError, got ${String(err)}`);
    return err;
  }
  assert.fail(`expected ${path} to be rejected`);
}

describe('loadConfigFile', () => {
  test('loads the original format, with the sha256 of the bytes and the absolute path', async () => {
    const text = '{"Apps":[{"Name":"five-thousand","Ports":[5001,5200],"Targets":["tcp-echo.fly.dev:5001","tcp-echo.fly.dev:5002"]}]}';
    const path = write('original.json', text);
    const loaded = await loadConfigFile(path);
    assert.equal(loaded.path, path);
    assert.equal(loaded.text, text);
    assert.equal(loaded.hash, createHash('sha256').update(text).digest('hex'));
    assert.equal(loaded.config.Apps[0]?.Name, 'five-thousand');
    assert.ok(Object.isFrozen(loaded.config.Apps[0]));
  });

  test('a missing file → ERR_CONFIG_READ naming the path', async () => {
    const err = await rejection(join(dir, 'nope.json'));
    assert.equal(err.code, 'ERR_CONFIG_READ');
    assert.equal(err.path, join(dir, 'nope.json'));
    assert.match(err.message, /Cannot read config file .*nope\.json/);
    assert.match(err.issues[0]?.message ?? '', /no such file.*FPROXY_CONFIG_PATH/);
  });

  test('invalid JSON → ERR_CONFIG_JSON with line and column', async () => {
    const err = await rejection(write('broken.json', '{\n  "Apps": [\n  ]\n  "X": 1\n}'));
    assert.equal(err.code, 'ERR_CONFIG_JSON');
    assert.equal(err.issues.length, 1);
    assert.equal(err.issues[0]?.line, 4);
    assert.equal(err.issues[0]?.column, 3);
  });

  test('schema problems → ERR_CONFIG_INVALID with every issue', async () => {
    const err = await rejection(write('invalid.json', { Apps: [{ Name: 'a', Ports: [-1], Target: ['x:1'] }] }));
    assert.equal(err.code, 'ERR_CONFIG_INVALID');
    assert.deepEqual(err.issues.map((i) => i.path), ['Apps[0].Ports[0]', 'Apps[0].Target']);
  });

  test('terminate-mode cert files resolve against the config file\'s directory', async () => {
    const loaded = await loadConfigFile(write('tls.json', terminating([{ Cert: 'certs/a.pem', Key: 'certs/a-key.pem' }])));
    assert.equal(loaded.config.Apps[0]?.Tls?.Mode, 'terminate');
  });

  test('missing, unreadable and mismatched cert files are issues with their paths, reported together', async () => {
    const err = await rejection(write('tls-bad.json', terminating([
      { Cert: 'certs/missing.pem', Key: 'certs/a-key.pem' },
      { Cert: 'certs/a.pem', Key: 'certs/junk.pem' },
      { Cert: 'certs/a.pem', Key: 'certs/b-key.pem' },
      { Cert: 'certs', Key: 'certs/a-key.pem' },
    ])));
    assert.equal(err.code, 'ERR_CONFIG_INVALID');
    const byPath = Object.fromEntries(err.issues.map((i) => [i.path, i.message]));
    assert.deepEqual(Object.keys(byPath), [
      'Apps[0].Tls.Certs[0].Cert',
      'Apps[0].Tls.Certs[1].Key',
      'Apps[0].Tls.Certs[2].Key',
      'Apps[0].Tls.Certs[3].Cert',
    ]);
    assert.match(byPath['Apps[0].Tls.Certs[0].Cert'] ?? '', new RegExp(`cannot read certificate file "certs/missing.pem" \\(${join(dir, 'certs', 'missing.pem')}\\): no such file`));
    assert.match(byPath['Apps[0].Tls.Certs[1].Key'] ?? '', /does not hold a PEM private key/);
    assert.match(byPath['Apps[0].Tls.Certs[2].Key'] ?? '', /key "certs\/b-key.pem" \(.*\) does not belong to certificate "certs\/a.pem"/);
    assert.match(byPath['Apps[0].Tls.Certs[3].Cert'] ?? '', /is a directory/);
  });

  test('cert-file problems and schema problems come in one report, grouped by app', async () => {
    const config = {
      Apps: [
        { Name: 'tls', Ports: [8443], Targets: ['x:1'], Tls: { Mode: 'terminate', Certs: [{ Cert: 'gone.pem', Key: 'gone-key.pem' }] } },
        { Name: 'tcp', Ports: [70000], Targets: ['x:1'] },
      ],
    };
    const err = await rejection(write('mixed.json', config));
    assert.deepEqual(err.issues.map((i) => i.path), ['Apps[0].Tls.Certs[0].Cert', 'Apps[0].Tls.Certs[0].Key', 'Apps[1].Ports[0]']);
  });

  test('passthrough apps need no files', async () => {
    const config = { Apps: [{ Name: 'p', Ports: [443], Targets: ['x:1'], Tls: { Mode: 'passthrough' } }] };
    await loadConfigFile(write('passthrough.json', config));
  });
});
