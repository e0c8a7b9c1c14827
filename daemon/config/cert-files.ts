// The I/O half of validation: every Tls "terminate" app's cert and key files exist, are readable,
// parse as PEM, and belong together. Paths resolve against the config file's directory.
// Invariant: like rules.ts it reads the raw JSON defensively, so a config with both a typo and a
// missing file reports both at once; it reports problems, never throws.
import { X509Certificate, createPrivateKey } from 'node:crypto';
import { readFile } from 'node:fs/promises';
import { resolve } from 'node:path';
import type { PathIssue, PathSegment } from './issue-path.ts';

export async function checkCertFiles(json: unknown, configDir: string): Promise<PathIssue[]> {
  const checks: Promise<PathIssue[]>[] = [];
  const apps = isObject(json) && Array.isArray(json.Apps) ? json.Apps : [];
  apps.forEach((app, i) => {
    const tls = isObject(app) ? app.Tls : undefined;
    if (!isObject(tls) || tls.Mode !== 'terminate' || !Array.isArray(tls.Certs)) return;
    tls.Certs.forEach((pair, j) => {
      if (isObject(pair)) checks.push(checkPair(pair, ['Apps', i, 'Tls', 'Certs', j], configDir));
    });
  });
  return (await Promise.all(checks)).flat();
}

async function checkPair(pair: Record<string, unknown>, at: PathSegment[], configDir: string): Promise<PathIssue[]> {
  // Both files are read at once; issues are listed Cert first whichever read finishes first.
  const [cert, key] = await Promise.all([
    load(pair.Cert, 'certificate', [...at, 'Cert'], configDir, (pem) => new X509Certificate(pem)),
    load(pair.Key, 'private key', [...at, 'Key'], configDir, (pem) => createPrivateKey(pem)),
  ]);
  const issues = [cert, key].flatMap((r) => (r.issue ? [r.issue] : []));
  if (cert.value && key.value && !cert.value.checkPrivateKey(key.value)) {
    issues.push({
      path: [...at, 'Key'],
      message: `key "${String(pair.Key)}" does not belong to certificate "${String(pair.Cert)}": use the key the certificate was issued for`,
    });
  }
  return issues;
}

async function load<T>(
  file: unknown,
  what: string,
  path: PathSegment[],
  configDir: string,
  parse: (pem: Buffer) => T,
): Promise<{ value?: T; issue?: PathIssue }> {
  if (typeof file !== 'string' || file === '') return {}; // the schema reports it
  const abs = resolve(configDir, file);
  const named = abs === file ? `"${file}"` : `"${file}" (${abs})`;
  let pem: Buffer;
  try {
    pem = await readFile(abs);
  } catch (err) {
    return { issue: { path, message: `cannot read ${what} file ${named}: ${describeFsError(err)}` } };
  }
  try {
    return { value: parse(pem) };
  } catch {
    const also = what === 'private key' ? ' (an encrypted key is not supported: decrypt it with `openssl pkey`)' : '';
    return { issue: { path, message: `${what} file ${named} does not hold a PEM ${what}${also}` } };
  }
}

function describeFsError(err: unknown): string {
  const code = (err as { code?: unknown }).code;
  if (code === 'ENOENT') return 'no such file (paths are relative to the config file\'s directory)';
  if (code === 'EACCES' || code === 'EPERM') return `permission denied (${code}): let the fproxy user read it`;
  if (code === 'EISDIR') return 'it is a directory, not a file';
  return err instanceof Error ? err.message : String(err);
}

function isObject(v: unknown): v is Record<string, unknown> {
  return typeof v === 'object' && v !== null && !Array.isArray(v);
}
