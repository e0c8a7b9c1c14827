// api-write-check: rollout-check's sibling for the admin API — config changes made over HTTP
// while clients keep connecting cost no connection. It starts six tagged echo targets and the real
// daemon (with an admin token), keeps `simulate` running against the "api" app (--workers
// listeners, a new connection per exchange) and makes --writes API writes in turn:
//   add a target (POST /apps/api/targets) · drain one (…/drain) and enable it again ·
//   remove one (DELETE …/targets/{address}) · replace the whole app (PUT /apps/api) ·
//   and every fourth round 5 concurrent adds (then 5 concurrent removes).
// Each config write must answer 200 `applied` and fresh connections right after it must be
// answered only by the targets the app now has; a drained target must stop getting fresh
// connections (its time-to-effect is reported). At the end the config file must hold exactly the
// targets the API left, and the load must have had 0 failed connections. Exits 1 on any problem.
//
//   scripts/api-write-check [--writes 40] [--concurrency 30] [--workers 2] [--timeout-ms 5000] [--verbose]
import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import { startEchoServers } from '../ftest/echo-server.ts';
import { ping } from '../ftest/ping.ts';
import { simulate } from '../ftest/simulate.ts';
import type { Failure } from '../ftest/failure.ts';
import { startDaemon } from './rollout-check-lib/daemon-child.ts';
import { median, ms } from './rollout-check-lib/time-to-effect.ts';
import { runCheck, verdict } from './rollout-check-lib/verdict.ts';

const TOKEN = 'api-write-check-token-0123456789abcdef';

function options(argv: string[]): { writes: number; concurrency: number; workers: number; timeoutMs: number; verbose: boolean } {
  const { values } = parseArgs({ args: argv, options: { writes: { type: 'string', default: '40' }, concurrency: { type: 'string', default: '30' }, workers: { type: 'string', default: '2' }, 'timeout-ms': { type: 'string', default: '5000' }, verbose: { type: 'boolean', default: false } } });
  const int = (name: string, raw: string, min: number): number => {
    const n = Number(raw);
    if (!Number.isInteger(n) || n < min) throw new Error(`Invalid --${name} "${raw}": use an integer ≥ ${min}`);
    return n;
  };
  return { writes: int('writes', values.writes, 1), concurrency: int('concurrency', values.concurrency, 1), workers: int('workers', values.workers, 1), timeoutMs: int('timeout-ms', values['timeout-ms'], 100), verbose: values.verbose };
}

async function main(): Promise<number> {
  const opts = options(process.argv.slice(2));
  const dir = await mkdtemp(join(tmpdir(), 'fproxy-api-write-check-'));
  const echo = await startEchoServers({ ports: [0, 0, 0, 0, 0, 0], host: '127.0.0.1', tag: true });
  const addr = (port: number): string => `127.0.0.1:${port}`;
  const pool = echo.ports.map(addr);
  let current = [pool[0]!, pool[1]!];
  const configPath = join(dir, 'config.json');
  await writeFile(configPath, JSON.stringify({ Apps: [{ Name: 'api', Ports: [0], Targets: current, Workers: opts.workers, DrainTimeoutMs: 5000 }] }, null, 2));
  const daemon = startDaemon(configPath, { FPROXY_ADMIN_TOKEN: TOKEN, FPROXY_SPARE_LISTENERS: String(4 * opts.workers) }, opts.verbose);
  const problems: string[] = [];
  const abort = new AbortController();
  const writeMs: number[] = [];
  const drainMs: number[] = [];
  let writes = 0;
  let probes = 0;
  const api = async (method: string, path: string, body?: unknown): Promise<{ status: number; text: string }> => {
    const startedAt = performance.now();
    const res = await fetch(`http://127.0.0.1:${daemon.adminPort()}${path}`, { method, headers: { authorization: `Bearer ${TOKEN}` }, ...(body === undefined ? {} : { body: JSON.stringify(body) }) });
    const text = await res.text();
    writes++;
    writeMs.push(performance.now() - startedAt);
    if (res.status !== 200) problems.push(`${method} ${path} → ${res.status}: ${text.trim()}`);
    if (opts.verbose) process.stderr.write(`${method} ${path} → ${res.status} in ${ms(performance.now() - startedAt)}\n`);
    return { status: res.status, text };
  };
  /** Tags of `n` fresh connections. */
  const fresh = async (port: number, n: number): Promise<string[]> => {
    const tags: string[] = [];
    for (let k = 0; k < n; k++) {
      const r = await ping({ target: { host: '127.0.0.1', port, label: addr(port) }, data: 'probe', timeoutMs: opts.timeoutMs });
      probes++;
      tags.push(r.ok ? r.reply.toString().split(':')[0]! : `failed (${r.failure.message})`);
    }
    return tags;
  };
  const expectOnly = async (port: number, allowed: readonly string[], when: string): Promise<void> => {
    const ports = new Set(allowed.map((a) => a.split(':').pop()!));
    const tags = await fresh(port, 4);
    const stray = tags.filter((t) => !ports.has(t));
    if (stray.length > 0) problems.push(`${when}: fresh connections answered by ${stray.join(', ')}, expected only ${allowed.join(', ')}`);
  };
  try {
    for (const deadline = Date.now() + 60_000; daemon.adminPort() === 0 || (await daemon.app('api'))?.state !== 'running'; await new Promise((r) => setTimeout(r, 25))) {
      if (Date.now() > deadline || daemon.child.exitCode !== null) throw new Error('the daemon did not start app "api" within 60 s');
    }
    const port = (await daemon.app('api'))!.ports[0]!;
    const firstFailures: Failure[] = [];
    const load = simulate({ target: { host: '127.0.0.1', port, label: addr(port) }, concurrency: opts.concurrency, durationMs: 3_600_000, timeoutMs: opts.timeoutMs, signal: abort.signal, onError: (f) => void (firstFailures.length < 10 && firstFailures.push(f)) });

    for (let i = 1; i <= opts.writes; i++) {
      const absent = pool.filter((p) => !current.includes(p));
      switch (i % 5) {
        case 1: { // add one
          const t = absent[0]!;
          if ((await api('POST', '/apps/api/targets', { Address: t })).status === 200) current = [...current, t];
          await expectOnly(port, current, `after adding ${t}`);
          break;
        }
        case 2: { // drain one, check it gets nothing new, enable it
          const t = current[0]!;
          const startedAt = performance.now();
          await api('POST', `/apps/api/targets/${encodeURIComponent(t)}/drain`);
          const others = current.filter((x) => x !== t);
          let effect: number | undefined;
          for (const deadline = startedAt + 10_000; performance.now() < deadline;) {
            const tags = await fresh(port, 4);
            if (!tags.includes(t.split(':').pop()!)) {
              effect = performance.now() - startedAt;
              break;
            }
          }
          if (effect === undefined) problems.push(`drain of ${t}: still getting fresh connections after 10 s`);
          else drainMs.push(effect);
          await expectOnly(port, others, `while ${t} is drained`);
          await api('POST', `/apps/api/targets/${encodeURIComponent(t)}/enable`);
          break;
        }
        case 3: { // remove one (keep two)
          if (current.length <= 2) break;
          const t = current[current.length - 1]!;
          if ((await api('DELETE', `/apps/api/targets/${encodeURIComponent(t)}`)).status === 200) current = current.filter((x) => x !== t);
          await expectOnly(port, current, `after removing ${t}`);
          break;
        }
        case 4: { // replace the whole app: the next two of the pool
          const next = [pool[(i * 2) % pool.length]!, pool[(i * 2 + 1) % pool.length]!];
          if ((await api('PUT', '/apps/api', { Ports: [port], Targets: next, Workers: opts.workers, DrainTimeoutMs: 5000 })).status === 200) current = next;
          await expectOnly(port, current, 'after PUT /apps/api');
          break;
        }
        case 0: { // concurrent adds, then concurrent removes: serialized by the daemon, none lost
          const add = pool.filter((p) => !current.includes(p));
          const results = await Promise.all(add.map((t) => api('POST', '/apps/api/targets', { Address: t })));
          current = [...current, ...add.filter((_, k) => results[k]!.status === 200)];
          await expectOnly(port, current, `after ${add.length} concurrent adds`);
          const drop = current.slice(2);
          const removed = await Promise.all(drop.map((t) => api('DELETE', `/apps/api/targets/${encodeURIComponent(t)}`)));
          current = current.filter((t) => !drop.includes(t) || removed[drop.indexOf(t)]!.status !== 200);
          await expectOnly(port, current, `after ${drop.length} concurrent removes`);
          break;
        }
      }
    }
    abort.abort();
    const summary = await load;
    const stored = JSON.parse(await readFile(configPath, 'utf8')) as { Apps: { Name: string; Targets: unknown[] }[] };
    const storedTargets = stored.Apps.find((a) => a.Name === 'api')?.Targets.map((t) => (typeof t === 'string' ? t : (t as { Address: string }).Address)) ?? [];
    if (JSON.stringify([...storedTargets].sort()) !== JSON.stringify([...current].sort())) problems.push(`the config file holds ${storedTargets.join(', ')}, the API left ${current.join(', ')}`);
    const app = await daemon.app('api');
    if (JSON.stringify([...(app?.targets ?? [])].sort()) !== JSON.stringify([...current].sort())) problems.push(`the app runs ${app?.targets.join(', ')}, the API left ${current.join(', ')}`);
    if (summary.errors > 0) problems.push(`${summary.errors} connection failures: ${JSON.stringify(summary.errorsByKind)}; first: ${firstFailures.map((f) => f.message).join('; ')}`);
    const line = (label: string, value: string) => `${`${label}:`.padEnd(24)}${value}`;
    process.stdout.write([
      line('connections made', `${summary.exchanges} (+ ${probes} probes)`),
      line('failures', `${summary.errors}`),
      line('api writes', `${writes} (${opts.writes} rounds)`),
      line('rollouts', `${app?.rollouts ?? 0}`),
      line('write → applied', `median ${ms(median(writeMs))}, slowest ${ms(Math.max(...writeMs))}`),
      line('drain → no new conns', `median ${ms(median(drainMs))}, slowest ${ms(drainMs.length ? Math.max(...drainMs) : undefined)}`),
      line('load', `${Math.round(summary.exchangesPerSec)} exchanges/s at concurrency ${opts.concurrency}, ${opts.workers} workers, rtt p99 ${summary.rtt.p99} ms`),
    ].join('\n') + '\n');
  } catch (err) {
    problems.push((err as Error).message);
  } finally {
    abort.abort();
    const stopProblem = await daemon.stop();
    if (stopProblem !== undefined) problems.push(stopProblem);
    await echo.close();
    await rm(dir, { recursive: true, force: true });
  }
  return verdict(problems, opts.verbose, daemon.tail);
}

await runCheck('api-write-check', main);
