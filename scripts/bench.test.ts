// scripts/bench's parsing and reporting on recorded outputs (bench-lib/fixtures/: real iperf3 3.12
// and wrk runs on loopback, one good and one refused each): no load, no tool, no network. The
// real benchmark runs only from `make bench` (and its shape check from `make bench-check`).
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { test } from 'node:test';
import { UsageError, parseOptions } from './bench-lib/args.ts';
import { jsonReport, markdown } from './bench-lib/report.ts';
import type { Sample } from './bench-lib/report.ts';
import { iperfMetrics, wrkMetrics } from './bench-lib/tool-output.ts';
import type { Machine } from './bench-lib/tools.ts';

const fixture = (name: string): string => readFileSync(new URL(`./bench-lib/fixtures/${name}`, import.meta.url), 'utf8');
const ok = (stdout: string) => ({ code: 0, stdout, stderr: '' });

test('iperf3 -J: Gbit/s from sum_received, proxy CPU per GB and in cores', () => {
  assert.deepEqual(iperfMetrics(ok(fixture('iperf3-1-stream.json')), 1, 2.5), {
    bulk1_gbps: 18.72, // 18723130623 bit/s
    bulk1_cpu_s_per_gb: 1.067, // 2.5 s / 2.342 GB
    bulk1_cpu_cores: 2.5, // 2.5 s over 1.0007 s
  });
  assert.deepEqual(iperfMetrics(ok(fixture('iperf3-1-stream.json')), 4, null), { bulk4_gbps: 18.72, bulk4_cpu_s_per_gb: null, bulk4_cpu_cores: null });
});

test('iperf3 failures name the cause', () => {
  assert.throws(() => iperfMetrics({ code: 1, stdout: fixture('iperf3-refused.json'), stderr: '' }, 1, null), /iperf3 failed: unable to connect to server: Connection refused/);
  assert.throws(() => iperfMetrics({ code: 1, stdout: '', stderr: 'iperf3: error - boom' }, 1, null), /iperf3 exited with 1 without JSON: iperf3: error - boom/);
});

test('wrk: rate, p50/p99 and errors from the BENCHJSON line; newconn with Connection: close', () => {
  assert.deepEqual(wrkMetrics(ok(fixture('wrk-keepalive.txt')), false, 0.5), {
    keepalive_rate: 25711, // 25812 requests in 1.003921 s
    keepalive_p50_us: 107,
    keepalive_p99_us: 5231,
    keepalive_cpu_us_per_req: 19.4, // 0.5 s / 25812
    keepalive_errors: 0,
  });
  assert.deepEqual(Object.keys(wrkMetrics(ok(fixture('wrk-keepalive.txt')), true, null)), ['newconn_rate', 'newconn_p50_us', 'newconn_p99_us', 'newconn_cpu_us_per_req', 'newconn_errors']);
  assert.throws(() => wrkMetrics({ code: 1, stdout: fixture('wrk-refused.stdout.txt'), stderr: fixture('wrk-refused.stderr.txt') }, false, null), /wrk exited with 1 without a report: unable to connect to 127\.0\.0\.1:20104 Connection refused/);
  const none = fixture('wrk-keepalive.txt').replace(/"requests":\d+/, '"requests":0').replace(/"connect":0/, '"connect":3');
  assert.throws(() => wrkMetrics(ok(none), false, null), /wrk completed no request \(errors: 3\)/);
});

const MACHINE: Machine = { cores: 2, cpuModel: 'test cpu', memGiB: 4, kernel: '6.1', node: 'v24', haproxy: 'HAProxy 2.6', nginx: '1.22', wrk: 'wrk 4.1', iperf3: 'iperf 3.12', clkTck: '100', nofile: '65536/65536' };

function samples(): Sample[] {
  const keep = (contender: string, run: number, cpuS: number | null): Sample => ({ run, workload: 'keepalive', contender, seconds: 1, metrics: wrkMetrics(ok(fixture('wrk-keepalive.txt')), false, cpuS) });
  const bulk = (contender: string, run: number): Sample => ({ run, workload: 'bulk1', contender, seconds: 1, metrics: iperfMetrics(ok(fixture('iperf3-1-stream.json')), 1, null) });
  return [
    keep('direct', 1, null), keep('haproxy', 1, 0.4), keep('fproxy', 1, 0.8), keep('fproxy', 2, 1.0),
    bulk('direct', 1), bulk('haproxy', 1), bulk('fproxy', 1),
    { run: 1, workload: 'newconn', contender: 'fproxy', seconds: 1, metrics: {}, error: 'wrk completed no request (errors: 3)' },
  ];
}

test('the JSON report: medians per contender, ratios to haproxy and direct, errors listed', () => {
  const input = { date: '2026-01-01T00:00:00.000Z', machine: MACHINE, settings: { durationS: 1, runs: 2 }, contenders: ['direct', 'haproxy', 'fproxy'], samples: samples(), elapsedS: 12.4, notes: [] };
  const rep = jsonReport(input) as { medians: Record<string, Record<string, number | null>>; ratios: Record<string, Record<string, Record<string, number | null>>>; errors: unknown[]; elapsedS: number };
  assert.equal(rep.medians.fproxy?.keepalive_cpu_us_per_req, 34.85, 'median of 31.0 and 38.7');
  assert.equal(rep.medians.direct?.keepalive_cpu_us_per_req, undefined, 'direct has no proxy CPU');
  assert.equal(rep.ratios.fproxy?.haproxy?.keepalive_cpu_us_per_req, 2.25);
  assert.equal(rep.ratios.fproxy?.direct?.keepalive_rate, 1);
  assert.equal(rep.ratios.fproxy?.direct?.keepalive_cpu_us_per_req, undefined, 'no proxy-only ratio to direct');
  assert.deepEqual(rep.errors, [{ run: 1, workload: 'newconn', contender: 'fproxy', error: 'wrk completed no request (errors: 3)' }]);
  assert.equal(rep.elapsedS, 12);
  const spread = (rep as unknown as { spreads: Record<string, Record<string, [number, number]>> }).spreads;
  assert.deepEqual(spread.fproxy?.keepalive_cpu_us_per_req, [31, 38.7], 'lowest and highest of the two runs');
  assert.deepEqual(spread.haproxy?.keepalive_cpu_us_per_req, [15.5, 15.5]);
});

test('the Markdown report: machine line, one row per measured metric, ratios, errors', () => {
  const md = markdown({ date: '2026-01-01T00:00:00.000Z', machine: MACHINE, settings: { durationS: 1, runs: 2 }, contenders: ['direct', 'haproxy', 'fproxy'], samples: samples(), elapsedS: 12.4, notes: ['a note'] });
  assert.match(md, /^## fproxy benchmark — 2026-01-01T00:00:00\.000Z$/m);
  assert.match(md, /^Machine: 2 cores \(test cpu\), 4 GiB, Linux 6\.1; node v24, HAProxy 2\.6/m);
  assert.match(md, /^\| metric \| direct \| haproxy \| fproxy \|$/m);
  assert.match(md, /^\| keep-alive \(req\/s\) \| 25,711 \| 25,711 \| 25,711 \|$/m);
  assert.match(md, /^\| bulk, 1 stream \(Gbit\/s\) \| 18\.7 \| 18\.7 \| 18\.7 \|$/m);
  assert.match(md, /^\| keep-alive: proxy CPU \(µs\/req\) \| ↓ \| — \| 2\.25 \| — \|$/m, "fproxy ÷ haproxy only: no proxy-only ratio to direct");
  assert.doesNotMatch(md, /new connections \(conn\/s\)/, 'a metric nobody measured has no row');
  assert.match(md, /^- ERROR run 1 newconn fproxy: wrk completed no request \(errors: 3\)$/m);
  assert.match(md, /^Spread over the 2 runs/m);
  assert.match(md, /^\| keep-alive: proxy CPU \(µs\/req\) \| — \| 15\.5 \| 31–38\.7 \|$/m, 'one run: its figure; two: lowest–highest');
  assert.match(md, /^- a note$/m);
  assert.match(md, /^- Total time: 12 s\.$/m);
});

test('flags: an unknown contender is a usage error naming the choices', () => {
  assert.throws(() => parseOptions(['--only', 'envoy']), (err: unknown) => err instanceof UsageError && /Unknown --only "envoy": use direct, haproxy, nginx, fproxy/.test((err as Error).message));
  assert.deepEqual(parseOptions(['--only', 'fproxy,direct']).contenders, ['direct', 'fproxy'], 'report order, whatever the flag order');
});
