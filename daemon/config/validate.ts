// Config validation: JSON text or value → a deep-frozen Config, or every problem at once, each with
// its path (`Apps[1].Ports[0]`) and a plain reason that names the value and the fix. Pure.
// Modelled on fastify's initial-config-validation: validate once, collect all issues, freeze.
// Invariants: the schema and the cross-key rules (rules.ts) both always run, so one pass reports
// everything; issues are grouped by app in config order; a success is frozen all the way down,
// so nothing downstream can change the snapshot the daemon diffed against.
import { z } from 'zod';
import { parseJsonText } from './json-text.ts';
import { formatPath } from './issue-path.ts';
import type { PathIssue, PathSegment } from './issue-path.ts';
import { checkRules } from './rules.ts';
import { ConfigSchema } from './schema.ts';
import type { Config } from './schema.ts';
import { suggestKey } from './suggest-key.ts';

export interface ConfigIssue {
  /** Where, as `Apps[1].Ports[0]`; '' = the whole file. */
  path: string;
  message: string;
  /** Set for invalid JSON (1-based). */
  line?: number;
  column?: number;
}

export type ConfigResult = { ok: true; config: Config } | { ok: false; issues: ConfigIssue[] };

export type ConfigErrorCode = 'ERR_CONFIG_INVALID' | 'ERR_CONFIG_JSON' | 'ERR_CONFIG_READ';

export class ConfigError extends Error {
  code: ConfigErrorCode;
  issues: ConfigIssue[];
  /** The config file, when there is one. */
  path?: string;

  constructor(code: ConfigErrorCode, issues: ConfigIssue[], options: { path?: string; cause?: unknown } = {}) {
    // The message is the heading; `issues` carry the detail (print them with formatIssues).
    const message = code === 'ERR_CONFIG_READ'
      ? `Cannot read config file${options.path === undefined ? '' : ` ${options.path}`}`
      : heading(issues, options.path);
    super(message, options.cause === undefined ? undefined : { cause: options.cause });
    this.name = 'ConfigError';
    this.code = code;
    this.issues = issues;
    if (options.path !== undefined) this.path = options.path;
  }
}

export function validateConfigText(text: string): ConfigResult {
  const parsed = parseJsonText(text);
  return parsed.ok ? validateConfig(parsed.value) : { ok: false, issues: [parsed.issue] };
}

export function validateConfig(json: unknown): ConfigResult {
  const result = ConfigSchema.safeParse(json, { reportInput: true, error: plainReason });
  const guessed = new Set<string>();
  const found = [...(result.success ? [] : fromZod(result.error.issues, guessed)), ...checkRules(json)];
  const issues = found.filter((i) => !redundant(i, guessed, found));
  if (issues.length === 0 && result.success) return { ok: true, config: deepFreeze(result.data) };
  return { ok: false, issues: orderByApp(issues.map((i) => ({ path: formatPath(i.path), message: i.message }))) };
}

/**
 * One mistake, one issue: `"Port": [80]` gets a "did you mean" that already says what "Ports is
 * required" would, and "Certs is only for terminate" makes "Certs must not be empty" moot.
 */
function redundant(issue: PathIssue, guessed: Set<string>, all: PathIssue[]): boolean {
  if (issue.missing && guessed.has(formatPath(issue.path))) return true;
  if (issue.replaces) return false;
  return all.some((r) => r.replaces && r.path.length <= issue.path.length && r.path.every((seg, k) => issue.path[k] === seg));
}

/** One issue per line, indented, under a heading naming the source when given. */
export function formatIssues(issues: ConfigIssue[], source?: string): string {
  const lines = issues.map((i) => (i.path === '' ? `  ${i.message}` : `  ${i.path}: ${i.message}`));
  return source === undefined ? lines.join('\n') : [`${heading(issues, source)}:`, ...lines].join('\n');
}

function heading(issues: ConfigIssue[], source: string | undefined): string {
  const n = issues.length;
  return `Invalid config${source === undefined ? '' : ` ${source}`} (${n} problem${n === 1 ? '' : 's'})`;
}

/** Stable: issues outside any app first, then by app in config order; each check's order kept within. */
export function orderByApp(issues: readonly ConfigIssue[]): ConfigIssue[] {
  const rank = (i: ConfigIssue) => Number(/^Apps\[(\d+)\]/.exec(i.path)?.[1] ?? -1);
  return issues
    .map((issue, order) => ({ issue, order }))
    .sort((a, b) => rank(a.issue) - rank(b.issue) || a.order - b.order)
    .map((x) => x.issue);
}

// --- zod issues → plain ones ---------------------------------------------------------------

type ZodIssue = z.core.$ZodIssue;
type RawIssue = z.core.$ZodRawIssue;

/** Per-parse messages for the generic cases; the schema's own `error`s (ports, names) win. */
function plainReason(iss: RawIssue): string | undefined {
  const got = describeValue(iss.input);
  switch (iss.code) {
    case 'invalid_type':
      if (iss.input === undefined) return 'is required';
      return `must be ${article(String(iss.expected))}, got ${got}`;
    case 'too_small':
      if (iss.origin === 'array' || iss.origin === 'string') {
        return Number(iss.minimum) <= 1 ? 'must not be empty' : `must have at least ${iss.minimum} ${unit(iss.origin)}`;
      }
      return `must be ${iss.inclusive ? 'at least' : 'more than'} ${iss.minimum}, got ${got}`;
    case 'too_big':
      if (iss.origin === 'array' || iss.origin === 'string') return `must have at most ${iss.maximum} ${unit(iss.origin)}`;
      return `must be at most ${iss.maximum}, got ${got}`;
    case 'invalid_value':
      return `must be ${iss.values.map((v) => JSON.stringify(v)).join(' or ')}, got ${got}`;
    default:
      return undefined;
  }
}

/** Zod's issues in our words; `guessed` collects the paths that a "did you mean" points at. */
function fromZod(zodIssues: ZodIssue[], guessed: Set<string>): PathIssue[] {
  const out: PathIssue[] = [];
  for (const iss of zodIssues) {
    const path = iss.path.filter((p): p is PathSegment => typeof p !== 'symbol');
    if (iss.code === 'unrecognized_keys') {
      out.push(...unknownKeys(path, iss.keys, guessed));
    } else if (iss.code === 'invalid_type' && iss.input === undefined) {
      out.push({ path, message: iss.message, missing: true });
    } else if (iss.code === 'invalid_type' && path.length === 0) {
      out.push({ path, message: `the config must be a JSON object such as {"Apps": []}, got ${describeValue(iss.input)}` });
    } else {
      out.push({ path, message: iss.message });
    }
  }
  return out;
}

function unknownKeys(path: PathSegment[], keys: string[], guessed: Set<string>): PathIssue[] {
  const known = knownKeys(path);
  return keys.map((key) => {
    const guess = suggestKey(key, known);
    if (guess === undefined) return { path: [...path, key], message: `unknown key "${key}": known keys are ${known.join(', ')}` };
    guessed.add(formatPath([...path, guess]));
    const caseOnly = guess.toLowerCase() === key.toLowerCase() ? ' (keys are case-sensitive)' : '';
    return { path: [...path, key], message: `unknown key "${key}": did you mean "${guess}"?${caseOnly}` };
  });
}

/** Keys the schema allows at `path` (an object inside ConfigSchema). */
function knownKeys(path: readonly PathSegment[]): string[] {
  let node: z.core.$ZodType | undefined = unwrap(ConfigSchema);
  for (const seg of path) {
    if (node === undefined) return [];
    const def = node._zod.def as { type: string; shape?: Record<string, z.core.$ZodType>; element?: z.core.$ZodType };
    node = unwrap(typeof seg === 'number' ? def.element : def.shape?.[seg]);
  }
  const def = node?._zod.def as { shape?: Record<string, unknown> } | undefined;
  return Object.keys(def?.shape ?? {});
}

/** Through optionals, and to the object option of a union (a target string-or-object, OutlierDetection false-or-object). */
function unwrap(node: z.core.$ZodType | undefined): z.core.$ZodType | undefined {
  let n = node;
  for (;;) {
    const def = n?._zod.def as { type: string; innerType?: z.core.$ZodType; options?: z.core.$ZodType[] } | undefined;
    if (def?.type === 'optional') n = def.innerType;
    else if (def?.type === 'union') n = def.options?.find((o) => o._zod.def.type === 'object');
    else return n;
  }
}

function describeValue(v: unknown): string {
  if (v === null) return 'null';
  if (Array.isArray(v)) return 'an array';
  if (typeof v === 'object') return 'an object';
  if (typeof v === 'string') return `string ${JSON.stringify(v)}`;
  if (typeof v === 'number' || typeof v === 'boolean') return String(v);
  return typeof v;
}

function article(expected: string): string {
  const word = expected === 'int' ? 'whole number' : expected === 'object' ? 'JSON object' : expected;
  return /^[aeiou]/.test(word) ? `an ${word}` : `a ${word}`;
}

function unit(origin: string): string {
  return origin === 'array' ? 'items' : 'characters';
}

function deepFreeze<T>(value: T): T {
  if (typeof value === 'object' && value !== null && !Object.isFrozen(value)) {
    Object.freeze(value);
    for (const v of Object.values(value)) deepFreeze(v);
  }
  return value;
}
