// `ftest balancer HOST:PORT`: which target answered each of N sequential connections, and
// whether the spread is even. Exit 1 when a connection failed, a reply did not match --expect,
// or the spread is uneven.

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
    .option('--json', 'print {"sequence":[…],"counts":{…},"even":true,"failures":[…]}')
    .addHelpText('after', '\nPut HOST:PORT before --data/--expect, which take every value that follows them.\nExit 1 when a connection failed, a reply did not match --expect, or max-min count > 1.')
    .action(async (target: Target, opts: { count: number; data?: string[]; expect?: string[]; timeout: number; json?: boolean }) => {
      const report = await checkBalancer({ target, count: opts.count, data: opts.data, expect: opts.expect, timeoutMs: opts.timeout });
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
        const spread = tallies.length > 0 ? ` (max ${Math.max(...tallies)}, min ${Math.min(...tallies)})` : '';
        console.log(`even: ${report.even ? 'yes' : 'no'}${spread}`);
        if (report.failures.length > 0) console.log(`failures: ${report.failures.length}`);
      }
      if (!report.even || report.failures.length > 0) process.exitCode = 1;
    });
}
