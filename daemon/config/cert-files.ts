// The I/O half of validation: every Tls "terminate" app's cert and key files exist, are readable,
// parse as PEM, and belong together (judged by proxy's parseCertPair, as the listener judges them).
// Paths resolve against the config file's directory.
// Invariant: like rules.ts it reads the raw JSON defensively, so a config with both a typo and a
// missing file reports both at once; it reports problems, never throws.
import { readFile } from 'node:fs/promises';
import { resolve } from 'node:path';
import { parseCertPair, readProblem } from '../../proxy/index.ts';
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
  const cert = typeof pair.Cert === 'string' && pair.Cert !== '' ? pair.Cert : undefined;
  const key = typeof pair.Key === 'string' && pair.Key !== '' ? pair.Key : undefined;
  // A missing or empty name is the schema's to report; the other file is still checked.
  const shown = { cert: named(cert ?? '', configDir), key: named(key ?? '', configDir) };
  // Both files are read at once; issues are listed Cert first whichever read finishes first.
  const none: { pem?: Buffer; problem?: string } = {};
  const [certRead, keyRead] = await Promise.all([
    cert === undefined ? none : read(cert, 'certificate', shown.cert, configDir),
    key === undefined ? none : read(key, 'private key', shown.key, configDir),
  ]);
  const issues: PathIssue[] = [];
  if (certRead.problem) issues.push({ path: [...at, 'Cert'], message: certRead.problem });
  if (keyRead.problem) issues.push({ path: [...at, 'Key'], message: keyRead.problem });
  const parsed = parseCertPair(certRead.pem, keyRead.pem, shown);
  if (!parsed.ok) issues.push(...parsed.problems.map((p) => ({ path: [...at, p.file === 'cert' ? 'Cert' : 'Key'], message: p.message })));
  return issues;
}

function named(file: string, configDir: string): string {
  const abs = resolve(configDir, file);
  return abs === file ? `"${file}"` : `"${file}" (${abs})`;
}

async function read(file: string, what: 'certificate' | 'private key', shown: string, configDir: string): Promise<{ pem?: Buffer; problem?: string }> {
  try {
    return { pem: await readFile(resolve(configDir, file)) };
  } catch (err) {
    return { problem: readProblem(err, what, shown, ' (paths are relative to the config file\'s directory)') };
  }
}

function isObject(v: unknown): v is Record<string, unknown> {
  return typeof v === 'object' && v !== null && !Array.isArray(v);
}
