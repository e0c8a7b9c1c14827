// CertStore on real files: names from SANs (CN fallback), selection order, load errors, and reloads
// that swap only what loads. End-to-end serving is in ../tls-terminate.test.ts.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { X509Certificate } from 'node:crypto';
import { renameSync, writeFileSync } from 'node:fs';
import { CertError, CertStore, certNames } from './cert-store.ts';
import { captureLogger, makeCert, tempDir, waitFor, type TestCert } from '../testing.ts';

const pair = (c: TestCert) => ({ certPath: c.certPath, keyPath: c.keyPath });

test('certNames: DNS subjectAltNames lower-cased (wildcards kept); the CN only when there are none', async (t) => {
  const dir = await tempDir(t);
  const san = await makeCert(dir, 'san', ['Main.Example.Test', 'www.example.test', '*.Apps.Example.Test']);
  assert.deepEqual(certNames(new X509Certificate(san.pem)), ['main.example.test', 'www.example.test', '*.apps.example.test']);
  const cnOnly = await makeCert(dir, 'cn', ['Legacy.Example.Test', '-']);
  assert.deepEqual(certNames(new X509Certificate(cnOnly.pem)), ['legacy.example.test']);
});

test('select: exact name, then a one-label wildcard, then the first pair; earlier pairs win a shared name', async (t) => {
  const dir = await tempDir(t);
  const [dflt, wild, exact, dup] = await Promise.all([
    makeCert(dir, 'default', ['default.example.test']),
    makeCert(dir, 'wild', ['*.example.test']),
    makeCert(dir, 'exact', ['a.example.test']),
    makeCert(dir, 'dup', ['a.example.test', 'dup.example.test']),
  ]);
  const store = CertStore.load([dflt, wild, exact, dup].map(pair));
  t.after(() => store.close());
  const ctx = (c: TestCert) => store.certs.find((x) => x.spec.certPath === c.certPath)!.context;
  const cases: [string, TestCert][] = [
    ['a.example.test', exact], // exact beats the wildcard, and the earlier of two exact pairs wins
    ['A.EXAMPLE.TEST', exact],
    ['dup.example.test', dup],
    ['b.example.test', wild],
    ['x.b.example.test', dflt], // a wildcard covers one label
    ['example.test', dflt],
    ['other.test', dflt],
    ['localhost', dflt],
  ];
  for (const [name, want] of cases) assert.equal(store.select(name), ctx(want), name);
  assert.equal(store.defaultContext, ctx(dflt));
});

test('load: a missing file, a non-PEM file or a key of another certificate is ERR_TLS_CERT naming the file', async (t) => {
  const dir = await tempDir(t);
  const [a, b] = await Promise.all([makeCert(dir, 'a', ['a.example.test']), makeCert(dir, 'b', ['b.example.test'])]);
  writeFileSync(`${dir}/junk.crt`, 'hello\n');
  const cases: [string, { certPath: string; keyPath: string }, RegExp][] = [
    ['missing cert', { certPath: `${dir}/nope.crt`, keyPath: a.keyPath }, /nope\.crt" with key .* does not load: cannot read certificate file ".*nope\.crt": no such file/],
    ['missing key', { certPath: a.certPath, keyPath: `${dir}/nope.key` }, /does not load: cannot read private key file ".*nope\.key": no such file/],
    ['not PEM', { certPath: `${dir}/junk.crt`, keyPath: a.keyPath }, /junk\.crt.*does not load/],
    ['wrong key', { certPath: a.certPath, keyPath: b.keyPath }, /a\.crt" with key ".*b\.key" does not load/],
  ];
  for (const [what, spec, message] of cases) {
    assert.throws(() => CertStore.load([pair(b), spec]), (err: unknown) => {
      assert.ok(err instanceof CertError, what);
      assert.equal(err.code, 'ERR_TLS_CERT');
      assert.match(err.message, message, what);
      return true;
    });
  }
  assert.throws(() => CertStore.load([]), { code: 'ERR_TLS_CERT' });
});

test('watch: a pair renamed over is reloaded once both files are in; an unchanged or broken one is kept as is', async (t) => {
  const dir = await tempDir(t);
  const [a, b] = await Promise.all([makeCert(dir, 'a', ['a.example.test']), makeCert(dir, 'b', ['b.example.test'])]);
  const { logger, lines } = await captureLogger('info');
  const store = CertStore.load([pair(a), pair(b)], { logger, debounceMs: 50 }).watch();
  t.after(() => store.close());
  const first = store.certs[0];

  const renewed = await makeCert(dir, 'b', ['b.example.test', 'new.example.test']);
  await waitFor(() => store.reloads === 1, 20_000, 'reload');
  assert.equal(store.certs[0], first, 'the untouched pair is the same object');
  assert.equal(store.certs[1]!.fingerprint256, renewed.fingerprint256);
  assert.equal(store.select('new.example.test'), store.certs[1]!.context, 'names re-indexed');

  // A file that does not parse: the pair stays, a warning says why.
  const warnings = () => lines.filter((l) => l.code === 'ERR_TLS_CERT' && l.cert === b.certPath).length;
  const warned = warnings(); // the key may have been seen before its certificate: that warns too
  writeFileSync(`${dir}/tmp`, '-----BEGIN CERTIFICATE-----\nMIIB\n');
  renameSync(`${dir}/tmp`, b.certPath);
  await waitFor(() => warnings() > warned, 20_000, 'warning');
  assert.equal(store.reloads, 1);
  assert.equal(store.certs[1]!.fingerprint256, renewed.fingerprint256);
  // Reloading by hand changes nothing either.
  assert.equal(store.reload(), 0);
});
