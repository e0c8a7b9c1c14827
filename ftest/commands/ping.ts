// `ftest ping HOST:PORT`: one timed exchange; exit 1 with the reason on any failure.

import { Command } from 'commander';
import type { Target } from '../address.ts';
import { formatMs } from '../failure.ts';
import { intArg, targetArg } from '../options.ts';
import { ping } from '../ping.ts';

export function pingCommand(): Command {
  return new Command('ping')
    .description('connect, send data, read the echo back, and print the timings')
    .argument('<target>', 'HOST:PORT, e.g. 127.0.0.1:5001, [::1]:5001, localhost:5001', targetArg)
    .option('-d, --data <data>', 'what to send', 'ping')
    .option('--timeout <ms>', 'give up after this many ms (dial + write + read)', intArg(1, 3_600_000), 2000)
    .addHelpText('after', '\nThe reply must be the data echoed back, optionally tagged ("9001:ping"). Exit 1 on refused, reset, timeout or a wrong reply.')
    .action(async (target: Target, opts: { data: string; timeout: number }) => {
      const result = await ping({ target, data: opts.data, timeoutMs: opts.timeout });
      if (!result.ok) {
        console.error(`ftest ping: ${result.failure.message}`);
        process.exitCode = 1;
        return;
      }
      console.log(`reply from ${result.remote}: ${JSON.stringify(result.reply.toString())} (${result.reply.length} bytes)`);
      const times = { dial: result.dialMs, write: result.writeMs, read: result.readMs, total: result.totalMs };
      console.log(Object.entries(times).map(([name, ms]) => `${name} ${formatMs(ms)} ms`).join(', '));
    });
}
