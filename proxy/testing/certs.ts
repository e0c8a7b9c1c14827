// Test certificates and temporary directories: a self-signed cert per call (scripts/make-test-cert.sh),
// and a directory removed when the test ends.
const MAKE_CERT = new URL('../../scripts/make-test-cert.sh', import.meta.url).pathname;

export interface TestCert {
  readonly certPath: string;
  readonly keyPath: string;
  readonly pem: Buffer;
  readonly key: Buffer;
  readonly fingerprint256: string;
}

/**
 * A self-signed cert for `names` (first = CN) in `dir` as `<file>.crt/.key`, via
 * scripts/make-test-cert.sh (renamed into place). `[cn, '-']` makes one without subjectAltName.
 */
export async function makeCert(dir: string, file: string, names: string[]): Promise<TestCert> {
  const { execFile } = await import('node:child_process');
  const { readFile } = await import('node:fs/promises');
  const { X509Certificate } = await import('node:crypto');
  const certPath = `${dir}/${file}.crt`;
  const keyPath = `${dir}/${file}.key`;
  await new Promise<void>((resolve, reject) =>
    execFile('bash', [MAKE_CERT, certPath, keyPath, names[0]!, ...(names[1] === '-' ? ['-'] : names)], (err) => (err ? reject(err) : resolve())));
  const pem = await readFile(certPath);
  return { certPath, keyPath, pem, key: await readFile(keyPath), fingerprint256: new X509Certificate(pem).fingerprint256 };
}

/** A fresh temporary directory, removed after the test. */
export async function tempDir(t: { after: (fn: () => unknown) => void }): Promise<string> {
  const { mkdtemp, rm } = await import('node:fs/promises');
  const { tmpdir } = await import('node:os');
  const dir = await mkdtemp(`${tmpdir()}/fproxy-test-`);
  t.after(() => rm(dir, { recursive: true, force: true }));
  return dir;
}

