// parseCertPair: the one place a certificate file and its key file are judged, for the daemon's
// config check (daemon/config/cert-files.ts: every problem, at its config path) and for the
// listener's CertStore (start-up and renewals). Pure: bytes in; reading stays with the caller (the
// daemon reads asynchronously, the store synchronously), and readProblem words a failed read the
// same way for both. node:crypto only (no node:tls), so the daemon can import it cheaply.
import { X509Certificate, createPrivateKey, type KeyObject } from 'node:crypto';

export interface CertPair {
  readonly x509: X509Certificate;
  readonly key: KeyObject;
  /** Lower-case DNS names ("*.x" wildcards included) the certificate serves. */
  readonly names: string[];
}

export interface CertPairProblem {
  readonly file: 'cert' | 'key';
  /** Names the file and the fix. */
  readonly message: string;
}

export type ParsedCertPair = { readonly ok: true; readonly pair: CertPair } | { readonly ok: false; readonly problems: CertPairProblem[] };

/** How files are named in messages, e.g. `"certs/a.pem" (/etc/fproxy/certs/a.pem)`. */
export interface ShownAs {
  readonly cert: string;
  readonly key: string;
}

/**
 * Parse both PEMs and check that the key belongs to the certificate. A file that could not be read
 * is passed as undefined (its read problem is the caller's); the other is still checked, so one
 * pass reports every problem.
 */
export function parseCertPair(certPem: Buffer | undefined, keyPem: Buffer | undefined, shown: ShownAs): ParsedCertPair {
  const problems: CertPairProblem[] = [];
  let x509: X509Certificate | undefined;
  let key: KeyObject | undefined;
  if (certPem !== undefined) {
    try {
      x509 = new X509Certificate(certPem);
    } catch {
      problems.push({ file: 'cert', message: `certificate file ${shown.cert} does not hold a PEM certificate` });
    }
  }
  if (keyPem !== undefined) {
    try {
      key = createPrivateKey(keyPem);
    } catch {
      problems.push({ file: 'key', message: `private key file ${shown.key} does not hold a PEM private key (an encrypted key is not supported: decrypt it with \`openssl pkey\`)` });
    }
  }
  if (x509 !== undefined && key !== undefined && !x509.checkPrivateKey(key)) {
    problems.push({ file: 'key', message: `key ${shown.key} does not belong to certificate ${shown.cert}: use the key the certificate was issued for` });
  }
  if (x509 === undefined || key === undefined || problems.length > 0) return { ok: false, problems };
  return { ok: true, pair: { x509, key, names: certNames(x509) } };
}

/** Why reading `shown` failed: "cannot read certificate file "a.pem": no such file". */
export function readProblem(err: unknown, what: 'certificate' | 'private key', shown: string, notFoundHint = ''): string {
  const code = (err as { code?: unknown }).code;
  let why: string;
  if (code === 'ENOENT') why = `no such file${notFoundHint}`;
  else if (code === 'EACCES' || code === 'EPERM') why = `permission denied (${code}): let the fproxy user read it`;
  else if (code === 'EISDIR') why = 'it is a directory, not a file';
  else why = err instanceof Error ? err.message : String(err);
  return `cannot read ${what} file ${shown}: ${why}`;
}

/**
 * The DNS names a certificate serves, lower-cased: its DNS subjectAltNames, or its CN when it has
 * none. Node quotes SAN values holding "," or quotes; such a value is no hostname, so it is skipped.
 */
export function certNames(x509: X509Certificate): string[] {
  const names: string[] = [];
  for (const entry of (x509.subjectAltName ?? '').split(', ')) {
    if (entry.startsWith('DNS:') && !entry.startsWith('DNS:"')) names.push(entry.slice(4).toLowerCase());
  }
  if (names.length > 0) return names;
  for (const line of x509.subject.split('\n')) {
    if (line.startsWith('CN=') && !line.startsWith('CN="')) names.push(line.slice(3).toLowerCase());
  }
  return names;
}
