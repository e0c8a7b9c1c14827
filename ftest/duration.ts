// Durations as typed on the command line: "500ms", "10s", "2m"; a bare number means seconds.

import { FtestError } from './errors.ts';

const UNIT_MS: Record<string, number> = { ms: 1, s: 1000, m: 60_000, h: 3_600_000 };

export function parseDuration(text: string): number {
  const match = /^(\d+(?:\.\d+)?)(ms|s|m|h)?$/.exec(text.trim());
  if (!match) {
    throw new FtestError('ERR_FTEST_OPTION', `Invalid duration "${text}": expected a number with a unit, e.g. 500ms, 10s, 2m`);
  }
  const ms = Math.round(Number(match[1]) * UNIT_MS[match[2] ?? 's']!);
  if (ms <= 0) throw new FtestError('ERR_FTEST_OPTION', `Invalid duration "${text}": must be more than 0`);
  return ms;
}
