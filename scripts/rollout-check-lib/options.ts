// rollout-check's command line: flags, defaults and validation.
import { parseArgs } from 'node:util';

export interface Options {
  rewrites: number;
  concurrency: number;
  tlsConcurrency: number;
  tlsRate: number;
  workers: number;
  effectMs: number;
  intervalMs: number;
  /** Per exchange of the loads and per probe: past it, a connection counts as failed. */
  timeoutMs: number;
  verbose: boolean;
}

export const USAGE = 'usage: scripts/rollout-check [--rewrites 50] [--concurrency 50] [--tls-concurrency 10] [--tls-rate 20] [--workers 2] [--effect-ms 1000] [--interval-ms 1500] [--timeout-ms 5000] [--verbose]\n';

export function parseOptions(argv: string[]): Options {
  const { values } = parseArgs({
    args: argv,
    options: {
      rewrites: { type: 'string', default: '50' },
      concurrency: { type: 'string', default: '50' },
      'tls-concurrency': { type: 'string', default: '10' },
      'tls-rate': { type: 'string', default: '20' },
      workers: { type: 'string', default: '2' },
      'effect-ms': { type: 'string', default: '1000' },
      'interval-ms': { type: 'string', default: '1500' },
      'timeout-ms': { type: 'string', default: '5000' },
      verbose: { type: 'boolean', default: false },
      help: { type: 'boolean', default: false },
    },
  });
  if (values.help) {
    process.stdout.write(USAGE);
    process.exit(0);
  }
  const int = (name: string, text: string, min: number): number => {
    const n = Number(text);
    if (!Number.isInteger(n) || n < min) throw new Error(`Invalid --${name} "${text}": expected an integer ≥ ${min}`);
    return n;
  };
  return {
    rewrites: int('rewrites', values.rewrites, 1),
    concurrency: int('concurrency', values.concurrency, 1),
    tlsConcurrency: int('tls-concurrency', values['tls-concurrency'], 1),
    tlsRate: int('tls-rate', values['tls-rate'], 0),
    workers: int('workers', values.workers, 1),
    effectMs: int('effect-ms', values['effect-ms'], 1),
    intervalMs: int('interval-ms', values['interval-ms'], 0),
    timeoutMs: int('timeout-ms', values['timeout-ms'], 1),
    verbose: values.verbose,
  };
}
