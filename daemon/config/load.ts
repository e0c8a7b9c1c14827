// Loading the config: read the bytes once (from the file, or from any config source), hash them (so
// a reload can skip unchanged content), parse, validate, and check the cert files terminate-mode
// apps name. Throws one ConfigError with every problem: ERR_CONFIG_READ (cannot read the file),
// ERR_CONFIG_JSON (not JSON, with line and column), ERR_CONFIG_INVALID (schema, rules and
// cert-file problems together, grouped by app).
import { createHash } from 'node:crypto';
import { readFile } from 'node:fs/promises';
import { dirname, resolve } from 'node:path';
import { checkCertFiles } from './cert-files.ts';
import { formatPath } from './issue-path.ts';
import { parseJsonText } from './json-text.ts';
import type { Config } from './schema.ts';
import { ConfigError, orderByApp, validateConfig } from './validate.ts';

export interface LoadedConfig {
  config: Config;
  /** sha256 (hex) of the config's bytes. */
  hash: string;
  /** Absolute path of the file (or where the source says the config came from). */
  path: string;
  text: string;
  /** Directory that relative paths in the config (cert files) resolve against. */
  baseDir: string;
}

export async function loadConfigFile(path: string): Promise<LoadedConfig> {
  const abs = resolve(path);
  return loadConfig(await readConfigFile(abs), dirname(abs), abs);
}

/** The file's bytes, or ConfigError ERR_CONFIG_READ saying why not and what to do. */
export async function readConfigFile(abs: string): Promise<Buffer> {
  try {
    return await readFile(abs);
  } catch (err) {
    throw new ConfigError('ERR_CONFIG_READ', [{ path: '', message: readReason(err) }], { path: abs, cause: err });
  }
}

/** Config bytes from any source → a validated config; `where` names the source in errors. */
export async function loadConfig(bytes: Buffer, baseDir: string, where: string): Promise<LoadedConfig> {
  const hash = createHash('sha256').update(bytes).digest('hex');
  const text = bytes.toString('utf8');
  const parsed = parseJsonText(text);
  if (!parsed.ok) throw new ConfigError('ERR_CONFIG_JSON', [parsed.issue], { path: where });

  const result = validateConfig(parsed.value);
  const certIssues = await checkCertFiles(parsed.value, baseDir);
  if (result.ok && certIssues.length === 0) return { config: result.config, hash, path: where, text, baseDir };
  const issues = orderByApp([
    ...(result.ok ? [] : result.issues),
    ...certIssues.map((i) => ({ path: formatPath(i.path), message: i.message })),
  ]);
  throw new ConfigError('ERR_CONFIG_INVALID', issues, { path: where });
}

function readReason(err: unknown): string {
  const code = (err as { code?: unknown }).code;
  if (code === 'ENOENT') return 'no such file: pass the config file\'s path, or set FPROXY_CONFIG_PATH';
  if (code === 'EISDIR') return 'it is a directory: pass the config file inside it';
  if (code === 'EACCES' || code === 'EPERM') return `permission denied (${code}): let the fproxy user read it`;
  return err instanceof Error ? err.message : String(err);
}
