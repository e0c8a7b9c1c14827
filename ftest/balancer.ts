// checkBalancer: N sequential connections to one address (normally the proxy), recording which
// target answered each, by the tag of a tagged echo server ("9001:ping" → "9001"). The spread
// is max − min over the targets' counts; it is even when the spread is at most `tolerance`
// (default 1). Through a proxy with several workers the kernel spreads connections over the
// workers by a hash, each worker rotates exactly, so up to one extra per worker is normal.
// With `expect`, reply i must equal expect[i % expect.length] exactly (tag included).

import type { Target } from './address.ts';
import { dial } from './connection.ts';
import { replyTag } from './echo-reply.ts';
import type { FailureKind } from './failure.ts';

export interface BalancerOptions {
  target: Target;
  /** Default 12. */
  count?: number;
  /** Sent round-robin: connection i sends data[i % data.length]. Default ["ping"]. */
  data?: readonly string[];
  expect?: readonly string[];
  /** Per connection (dial + exchange). Default 2000. */
  timeoutMs?: number;
  /** Largest max − min count still called even. Default 1. */
  tolerance?: number;
}

export interface BalancerReport {
  /** Per connection, the tag of the target that answered ("untagged" if none), or null if none did. */
  sequence: (string | null)[];
  counts: Record<string, number>;
  /** max − min over counts; null when no target answered. */
  spread: number | null;
  /** spread <= tolerance. */
  even: boolean;
  tolerance: number;
  failures: { index: number; kind: FailureKind; message: string }[];
}

export async function checkBalancer(options: BalancerOptions): Promise<BalancerReport> {
  const { target, count = 12, data = ['ping'], expect, timeoutMs = 2000, tolerance = 1 } = options;
  const report: BalancerReport = { sequence: [], counts: {}, spread: null, even: false, tolerance, failures: [] };
  for (let index = 0; index < count; index++) {
    const sent = Buffer.from(data[index % data.length] ?? 'ping');
    const wanted = expect && expect.length > 0 ? Buffer.from(expect[index % expect.length]!) : undefined;
    const dialled = await dial(target, timeoutMs);
    if (!dialled.ok) {
      report.sequence.push(null);
      report.failures.push({ index, kind: dialled.failure.kind, message: dialled.failure.message });
      continue;
    }
    const result = await dialled.connection.exchange(sent, { timeoutMs: Math.max(1, timeoutMs - dialled.dialMs), expect: wanted });
    // A wrong reply still tells which target answered.
    const tag = result.reply.length > 0 && (result.ok || result.failure.kind === 'wrongReply') ? replyTag(result.reply) : null;
    report.sequence.push(tag);
    if (tag !== null) report.counts[tag] = (report.counts[tag] ?? 0) + 1;
    if (result.ok) await dialled.connection.close(Math.min(timeoutMs, 1000));
    else report.failures.push({ index, kind: result.failure.kind, message: result.failure.message });
  }
  const tallies = Object.values(report.counts);
  report.spread = tallies.length > 0 ? Math.max(...tallies) - Math.min(...tallies) : null;
  report.even = report.spread !== null && report.spread <= tolerance;
  return report;
}
