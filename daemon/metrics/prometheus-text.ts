// parsePrometheusText: a strict reader of the Prometheus text exposition format (0.0.4), for the
// tests that check GET /metrics and for `fproxy status`-like tools. It rejects what `promtool check
// metrics` would: a sample before its family's TYPE, a bad name or label, a duplicate series, an
// unparsable value, histogram buckets that are not cumulative or whose +Inf differs from _count.
// Pure: text in, families out.

export interface Sample {
  readonly name: string;
  readonly labels: Readonly<Record<string, string>>;
  readonly value: number;
}

export interface Family {
  readonly name: string;
  readonly type: string;
  readonly help: string;
  readonly samples: Sample[];
}

export class PrometheusTextError extends Error {
  readonly code = 'ERR_PROM_TEXT';
  readonly line: number;
  constructor(line: number, message: string) {
    super(`line ${line}: ${message}`);
    this.line = line;
  }
}

const NAME = /^[a-zA-Z_:][a-zA-Z0-9_:]*$/;
const LABEL = /^[a-zA-Z_][a-zA-Z0-9_]*$/;
const TYPES = new Set(['counter', 'gauge', 'histogram', 'summary', 'untyped']);
const SUFFIXES: Record<string, readonly string[]> = { histogram: ['_bucket', '_sum', '_count'], summary: ['_sum', '_count', ''], counter: [''], gauge: [''], untyped: [''] };

export function parsePrometheusText(text: string): Map<string, Family> {
  const families = new Map<string, Family>();
  const seen = new Set<string>();
  const lines = text.split('\n');
  if (lines.at(-1) === '') lines.pop();
  lines.forEach((raw, i) => {
    const n = i + 1;
    const line = raw.trim();
    if (line === '') return;
    if (line.startsWith('#')) {
      const m = /^#\s+(HELP|TYPE)\s+(\S+)(?:\s+(.*))?$/.exec(line);
      if (m === null) return; // a plain comment
      const [, kind, name, rest = ''] = m;
      if (!NAME.test(name!)) throw new PrometheusTextError(n, `bad metric name "${name}"`);
      const f = families.get(name!) ?? { name: name!, type: 'untyped', help: '', samples: [] };
      if (kind === 'TYPE') {
        if (!TYPES.has(rest)) throw new PrometheusTextError(n, `unknown type "${rest}" for ${name}`);
        if (f.samples.length > 0) throw new PrometheusTextError(n, `TYPE for ${name} after its samples`);
        families.set(name!, { ...f, type: rest });
      } else {
        families.set(name!, { ...f, help: rest });
      }
      return;
    }
    const sample = parseSample(line, n);
    const family = familyOf(families, sample.name);
    if (family === undefined) throw new PrometheusTextError(n, `sample ${sample.name} has no TYPE line before it`);
    const key = `${sample.name}{${Object.entries(sample.labels).sort().map(([k, v]) => `${k}=${v}`).join(',')}}`;
    if (seen.has(key)) throw new PrometheusTextError(n, `duplicate series ${key}`);
    seen.add(key);
    family.samples.push(sample);
  });
  for (const f of families.values()) if (f.type === 'histogram') checkHistogram(f);
  return families;
}

function familyOf(families: Map<string, Family>, sampleName: string): Family | undefined {
  for (const [name, f] of families) {
    for (const suffix of SUFFIXES[f.type] ?? ['']) if (sampleName === name + suffix) return f;
  }
  return undefined;
}

function parseSample(line: string, n: number): Sample {
  const m = /^([a-zA-Z_:][a-zA-Z0-9_:]*)(\{(.*)\})?\s+(\S+)(?:\s+(-?\d+))?$/.exec(line);
  if (m === null) throw new PrometheusTextError(n, `not a sample: ${line}`);
  const labels: Record<string, string> = {};
  const body = m[3] ?? '';
  let rest = body;
  while (rest.length > 0) {
    const lm = /^\s*([a-zA-Z_][a-zA-Z0-9_]*)="((?:[^"\\\n]|\\[\\"n])*)"\s*(,|$)/.exec(rest);
    if (lm === null || !LABEL.test(lm[1]!)) throw new PrometheusTextError(n, `bad labels {${body}}`);
    if (lm[1]! in labels) throw new PrometheusTextError(n, `label ${lm[1]} twice`);
    labels[lm[1]!] = lm[2]!.replace(/\\(.)/g, (_, c: string) => (c === 'n' ? '\n' : c));
    rest = rest.slice(lm[0].length);
  }
  // As Prometheus reads it (Go's ParseFloat): Inf and NaN in any case (prom-client writes "Nan").
  const text = m[4]!;
  if (!/^(?:[+-]?(?:\d+\.?\d*|\.\d+)(?:[eE][+-]?\d+)?|[+-]?inf(?:inity)?|nan)$/i.test(text)) throw new PrometheusTextError(n, `bad value "${text}"`);
  const lower = text.toLowerCase().replace('infinity', 'inf');
  const value = lower === 'nan' ? NaN : lower === '+inf' || lower === 'inf' ? Infinity : lower === '-inf' ? -Infinity : Number(text);
  return { name: m[1]!, labels, value };
}

function checkHistogram(f: Family): void {
  // Group by the labels other than `le`.
  const groups = new Map<string, { buckets: { le: number; v: number }[]; count?: number }>();
  for (const s of f.samples) {
    const { le, ...rest } = s.labels;
    const key = JSON.stringify(Object.entries(rest).sort());
    const g = groups.get(key) ?? { buckets: [] };
    groups.set(key, g);
    if (s.name === `${f.name}_bucket`) {
      if (le === undefined) throw new PrometheusTextError(0, `${f.name}_bucket without le`);
      g.buckets.push({ le: le === '+Inf' ? Infinity : Number(le), v: s.value });
    } else if (s.name === `${f.name}_count`) {
      g.count = s.value;
    }
  }
  for (const [key, g] of groups) {
    const sorted = [...g.buckets].sort((a, b) => a.le - b.le);
    for (let i = 1; i < sorted.length; i++) {
      if (sorted[i]!.v < sorted[i - 1]!.v) throw new PrometheusTextError(0, `${f.name}${key}: buckets not cumulative at le=${sorted[i]!.le}`);
    }
    const inf = sorted.at(-1);
    if (inf === undefined || inf.le !== Infinity) throw new PrometheusTextError(0, `${f.name}${key}: no le="+Inf" bucket`);
    if (g.count !== undefined && g.count !== inf.v) throw new PrometheusTextError(0, `${f.name}${key}: +Inf bucket ${inf.v} != _count ${g.count}`);
  }
}

/** Sum of a family's samples named `name` whose labels include `match`. */
export function sumSamples(families: Map<string, Family>, name: string, match: Record<string, string> = {}): number {
  let total = 0;
  for (const f of families.values()) {
    for (const s of f.samples) {
      if (s.name !== name) continue;
      if (Object.entries(match).every(([k, v]) => s.labels[k] === v)) total += s.value;
    }
  }
  return total;
}
