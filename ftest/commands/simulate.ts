// `ftest simulate HOST:PORT`: concurrent load with latency percentiles and errors by kind.
// Exit status: 0 when the run happened, whatever its errors (they are the measurement), unless
// --max-errors N is given and errors exceed N; 1 also for bad options. A progress bar goes to
// stderr on a TTY only.

import { Command } from 'commander';
import type { Target } from '../address.ts';
import { FAILURE_KINDS } from '../failure.ts';
import type { Percentiles } from '../latency.ts';
import { durationArg, intArg, targetArg } from '../options.ts';
import type { SimulateSummary } from '../simulate.ts';
import { SIMULATE_LIMITS as LIMITS } from '../simulate-limits.ts';

interface SimulateFlags {
  concurrency: number;
  count?: number;
  duration?: number;
  data: string;
  keepalive?: boolean;
  json?: boolean;
  timeout: number;
  maxErrors?: number;
}

export function simulateCommand(): Command {
  return new Command('simulate')
    .description('run concurrent exchanges and report latency percentiles, throughput and errors by kind')
    .argument('<target>', 'HOST:PORT, e.g. 127.0.0.1:5001 or [::1]:5001', targetArg)
    .option('-c, --concurrency <n>', 'concurrent workers', intArg(1, LIMITS.maxConcurrency), 10)
    .option('-n, --count <n>', 'exchanges in total (default 1000 unless --duration)', intArg(1, LIMITS.maxTotal))
    .option('--duration <time>', 'run for this long, e.g. 10s, 2m (max 1h); with -n, whichever ends first', durationArg)
    .option('-d, --data <data>', 'what each exchange sends', 'ping')
    .option('--keepalive', 'reuse each worker\'s connection (default: a new connection per exchange)')
    .option('--timeout <ms>', 'per dial and per exchange', intArg(1, 3_600_000), 5000)
    .option('--max-errors <n>', 'exit 1 when more than N exchanges failed', intArg(0, LIMITS.maxTotal))
    .option('--json', 'print the summary as JSON (ok, errors, errorsByKind, exchangesPerSec, dial/rtt percentiles in ms)')
    .addHelpText('after', [
      '',
      'rtt is the time from writing the data to having the complete echo; dial is the TCP connect.',
      'Error kinds: refused, reset, timeout, closed (no reply at all), wrongReply, other.',
      'Exit 0 once the run completes, errors or not, unless --max-errors is exceeded.',
    ].join('\n'))
    .action(async (target: Target, flags: SimulateFlags) => {
      const controller = new AbortController();
      const stop = () => controller.abort();
      process.once('SIGINT', stop);
      process.once('SIGTERM', stop);
      // Loaded on use: hdr-histogram-js costs ~60 ms, which the other commands need not pay.
      const { simulate } = await import('../simulate.ts');
      const bar = await progressBar(flags);
      let summary: SimulateSummary;
      try {
        summary = await simulate({
          target,
          concurrency: flags.concurrency,
          total: flags.count,
          durationMs: flags.duration,
          data: flags.data,
          keepalive: flags.keepalive ?? false,
          timeoutMs: flags.timeout,
          signal: controller.signal,
          onProgress: bar?.onProgress,
        });
      } finally {
        bar?.stop();
        process.off('SIGINT', stop);
        process.off('SIGTERM', stop);
      }
      if (flags.json) console.log(JSON.stringify(summary));
      else console.log(formatSummary(summary));
      if (flags.maxErrors !== undefined && summary.errors > flags.maxErrors) {
        console.error(`ftest simulate: ${summary.errors} errors, more than --max-errors ${flags.maxErrors}`);
        process.exitCode = 1;
      }
    });
}

async function progressBar(flags: SimulateFlags): Promise<{ onProgress: (done: number) => void; stop: () => void } | undefined> {
  if (!process.stderr.isTTY) return undefined;
  const { default: cliProgress } = await import('cli-progress');
  const startedAt = Date.now();
  // By count when there is one; otherwise by elapsed seconds of --duration.
  const byCount = flags.count !== undefined || flags.duration === undefined;
  const total = byCount ? (flags.count ?? 1000) : Math.ceil(flags.duration! / 1000);
  const bar = new cliProgress.SingleBar(
    { stream: process.stderr, format: `{bar} {value}/{total} ${byCount ? 'exchanges' : 's'} | {done} done`, hideCursor: true },
    cliProgress.Presets.shades_classic,
  );
  bar.start(total, 0, { done: 0 });
  return {
    onProgress: (done) => bar.update(byCount ? done : Math.min(total, Math.floor((Date.now() - startedAt) / 1000)), { done }),
    stop: () => bar.stop(),
  };
}

export function formatSummary(summary: SimulateSummary): string {
  const mode = summary.keepalive ? 'keepalive' : 'a new connection per exchange';
  const seconds = (summary.elapsedMs / 1000).toFixed(2);
  const lines = [
    `simulate ${summary.target}: ${summary.exchanges} exchanges in ${seconds} s, concurrency ${summary.concurrency}, ${mode}` +
      (summary.stoppedBy === 'total' ? '' : ` (stopped by ${summary.stoppedBy})`),
    `ok ${summary.ok}, errors ${summary.errors}, ${summary.exchangesPerSec.toFixed(1)} ok exchanges/s`,
    `dial ms  ${formatPercentiles(summary.dial)}`,
    `rtt ms   ${formatPercentiles(summary.rtt)}`,
  ];
  if (summary.errors > 0) {
    lines.push(`errors: ${FAILURE_KINDS.filter((kind) => summary.errorsByKind[kind] > 0).map((kind) => `${kind} ${summary.errorsByKind[kind]}`).join(', ')}`);
    const first = summary.failures[0];
    if (first) lines.push(`first error at ${new Date(first.at).toISOString()}: ${first.message}`);
  }
  const { waits, waitedMs } = summary.redialBackoff;
  if (waits > 0) lines.push(`redials backed off ${waits} times after failed dials (${(waitedMs / 1000).toFixed(2)} s waited; 10 ms doubling to 1 s)`);
  return lines.join('\n');
}

function formatPercentiles(p: Percentiles): string {
  if (p.count === 0) return '(none)';
  return `p50 ${p.p50}  p90 ${p.p90}  p99 ${p.p99}  p99.9 ${p.p999}  max ${p.max}  (n=${p.count})`;
}
