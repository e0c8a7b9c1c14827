// `ftest balancer HOST:PORT`: which target answered each of N sequential connections, and
// how even the spread is. Exit 1 when a connection failed or a reply did not match --expect; an
// uneven spread fails only when asked (--expect-even): through a proxy with several workers the
// kernel's hash decides which worker takes each connection, so exact evenness is not a promise.

import { Command } from 'commander';
import type { Target } from '../address.ts';
import { checkBalancer } from '../balancer.ts';
import { intArg, targetArg } from '../options.ts';

export function balancerCommand(): Command {
  return new Command('balancer')
    .description('open N sequential connections and show which target answered each (needs targets run with `serve --tag`)')
    .argument('<target>', 'HOST:PORT of the balancer (the proxy)', targetArg)
    .option('-n, --count <n>', 'connections to open, one after another', intArg(1, 100_000), 12)
    .option('--data <data...>', 'data to send; connection i sends data[i % len] (default "ping")')
    .option('--expect <reply...>', 'connection i must get back exactly expect[i % len], tag included (e.g. 9001:ping)')
    .option('--timeout <ms>', 'per connection (dial + exchange)', intArg(1, 3_600_000), 2000)
    .option('--expect-even', 'also exit 1 when the spread (max - min count) is above --tolerance')
    .option('--tolerance <n>', 'largest spread (max - min count) still called even; implies --expect-even', intArg(0, 100_000))
    .option('--json', 'print {"sequence":[…],"counts":{…},"spread":0,"even":true,"tolerance":1,"failures":[…]}')
    .addHelpText('after', '\nPut HOST:PORT before --data/--expect, which take every value that follows them.\nExit 1 when a connection failed or a reply did not match --expect; with --expect-even (or --tolerance)\nalso when max - min count > tolerance (default 1). Through a proxy with N workers, a spread up to N is normal.')
    .action(async (target: Target, opts: { count: number; data?: string[]; expect?: string[]; timeout: number; json?: boolean; expectEven?: boolean; tolerance?: number }) => {
      const checkEven = opts.expectEven === true || opts.tolerance !== undefined;
      const report = await checkBalancer({ target, count: opts.count, data: opts.data, expect: opts.expect, timeoutMs: opts.timeout, tolerance: opts.tolerance });
      if (opts.json) {
        console.log(JSON.stringify(report));
      } else {
        console.log(`balancer ${target.label}: ${opts.count} connections`);
        const failures = new Map(report.failures.map((failure) => [failure.index, failure.message]));
        report.sequence.forEach((tag, index) => {
          const failure = failures.get(index);
          console.log(`${String(index + 1).padStart(5)}  ${tag ?? '-'}${failure ? `  ${failure}` : ''}`);
        });
        // In the order targets first answered (object keys that look like ports sort numerically).
        const tags = [...new Set(report.sequence.filter((tag) => tag !== null))];
        const counts = tags.map((tag) => `${tag}=${report.counts[tag]}`);
        console.log(`counts: ${counts.join(' ') || '(none)'}`);
        const tallies = Object.values(report.counts);
        const range = tallies.length > 0 ? ` (max ${Math.max(...tallies)}, min ${Math.min(...tallies)})` : '';
        const unchecked = !checkEven && !report.even ? '; not checked, --expect-even fails on it' : '';
        const verdict = report.spread === null ? '' : `: ${report.even ? 'even' : 'uneven'} (tolerance ${report.tolerance}${unchecked})`;
        console.log(`spread: ${report.spread ?? '-'}${range}${verdict}`);
        if (report.failures.length > 0) console.log(`failures: ${report.failures.length}`);
      }
      if ((checkEven && !report.even) || report.failures.length > 0) process.exitCode = 1;
    });
}
