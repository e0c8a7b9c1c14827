// scripts/bench.ts — fproxy against direct, HAProxy and nginx stream on loopback, in one
// invocation: bulk throughput (iperf3, 1 and 4 streams), keep-alive and new-connection HTTP
// (wrk), idle connections (memory per connection), proxy CPU per GB / per request; or, with
// --scale, the daemon with 200 apps (start-up, memory, idle CPU, one rollout among many).
// Run it through scripts/bench (raises the open-files limit, uses the project's Node 24).
// Progress goes to stderr; the report (Markdown, or JSON with --json) to stdout.
// Exit code: 0 = every measurement succeeded, 1 = some failed (still reported), 2 = usage.
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { USAGE, UsageError, parseOptions } from './bench-lib/args.ts';
import type { Options } from './bench-lib/args.ts';
import { compare, estimateSeconds } from './bench-lib/compare.ts';
import { daemonAvailable, DAEMON_MAIN } from './bench-lib/fproxy.ts';
import { installCleanup, stopAll } from './bench-lib/proc.ts';
import { jsonReport, markdown } from './bench-lib/report.ts';
import { scale, scaleMarkdown } from './bench-lib/scale.ts';
import { ensureTools, machine, nofileLimit } from './bench-lib/tools.ts';

const log = (s: string): void => void process.stderr.write(`bench: ${s}\n`);

async function main(): Promise<number> {
  let o: Options;
  try {
    o = parseOptions(process.argv.slice(2));
  } catch (err) {
    process.stderr.write(`${(err as Error).message}\n\n${USAGE}`);
    return 2;
  }
  if (o.help) {
    process.stdout.write(USAGE);
    return 0;
  }
  const tmp = mkdtempSync(join(tmpdir(), 'fproxy-bench-'));
  installCleanup(() => {
    if (!o.keepTmp) rmSync(tmp, { recursive: true, force: true });
  });
  const started = performance.now();
  try {
    if (o.scale || o.contenders.some((c) => c.startsWith('fproxy'))) {
      if (!daemonAvailable()) throw new Error(`${DAEMON_MAIN} (or node_modules/.bin/node) not found: run npm ci, or leave fproxy out with --only direct,haproxy,nginx`);
    }
    if (o.scale) {
      const r = await scale(o, tmp, log);
      const elapsedS = (performance.now() - started) / 1000;
      process.stdout.write(o.json ? JSON.stringify({ ...r, elapsedS: Math.round(elapsedS) }, null, 2) + '\n' : scaleMarkdown(r, elapsedS));
      return r.ok ? 0 : 1;
    }
    const tools = ['wrk', 'iperf3', 'nginx'];
    if (o.contenders.includes('haproxy')) tools.push('haproxy');
    if (o.contenders.includes('nginx')) tools.push('nginx-stream');
    ensureTools(tools, log);
    const limit = nofileLimit();
    const needFds = 2 * o.idleConns + 1000;
    if (o.workloads.includes('idle') && limit < needFds) {
      throw new Error(`Open-files limit ${limit} is too low for ${o.idleConns} idle connections (need ${needFds}): run through scripts/bench (it raises ulimit -n), or lower --idle-conns`);
    }
    const m = machine();
    const est = estimateSeconds(o);
    log(`${o.contenders.join(', ')} × ${o.workloads.join(', ')} × ${o.runs} run(s) of ${o.durationS} s; estimated ${Math.floor(est / 60)} min ${Math.round(est % 60)} s`);
    const date = new Date().toISOString();
    const r = await compare(o, m, tmp, log);
    const elapsedS = (performance.now() - started) / 1000;
    const input = { date, machine: m, settings: r.settings, contenders: o.contenders, samples: r.samples, elapsedS, notes: r.notes };
    process.stdout.write(o.json ? JSON.stringify(jsonReport(input), null, 2) + '\n' : markdown(input));
    if (o.keepTmp) log(`kept ${tmp}`);
    return r.samples.some((s) => s.error) ? 1 : 0;
  } catch (err) {
    if (err instanceof UsageError) {
      process.stderr.write(`${err.message}\n`);
      return 2;
    }
    log(`failed: ${(err as Error).stack ?? String(err)}`);
    return 1;
  } finally {
    await stopAll();
  }
}

process.exit(await main());
