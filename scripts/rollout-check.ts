// rollout-check: shows that config rollouts cost no connection, for plain TCP and TLS passthrough
// apps alike. It starts two sets of tagged echo targets, four TLS echo targets with a certificate
// each (rollout-check-lib/tls-app.ts) and the real daemon (daemon/main.ts, as a child process).
// For the whole run it keeps two loads going, each with a new connection per exchange:
// - `simulate` against the "rolling" app at --concurrency;
// - TLS clients against the "tls-pass" app at --tls-concurrency, starting at most --tls-rate
//   exchanges a second (a node TLS exchange costs ~2.5 ms of CPU here, client and target ends
//   together; uncapped, this loop would take a whole core from the rest of the check on a 2-core
//   machine). Each exchange: handshake with SNI a.rollout.test or b.rollout.test in turn, send,
//   read the tagged echo, close; it counts only if a target on that SNI's route answered, with
//   that target's own certificate.
// It rewrites the config --rewrites times with atomic renames: each rewrite alternates the
// rolling app's target set, adds/removes its second port, and alternates both of tls-pass's route
// target sets. After each rewrite it waits until fresh connections are answered by the new
// targets (the second port answering or refusing as it should; for TLS, each SNI by its new
// target, by tag and certificate); that time must stay under --effect-ms for both apps. Every app
// runs --workers listeners (default 2, written into the config, so the check does not depend on
// the CPU count). A "steady" app that is never edited must keep its pids throughout. Every port
// is 0 in the config (the kernel picks, the daemon keeps it across generations); the real ports
// come from /apps, and the check asserts they stay the same through every rollout.
// A "long" app, rolled out by every rewrite, carries 20 long-lived connections each echoing a
// counter every 100 ms (checked end to end): they must survive every rollout (handed over, issue 16),
// and the time until each old generation has exited is reported.
// Prints connections, failures, rollouts and the slowest time-to-effect of both apps; exits 1 on
// any failure.
//
//   scripts/rollout-check [--rewrites 50] [--concurrency 50] [--tls-concurrency 10] [--tls-rate 20] [--workers 2] [--effect-ms 1000] [--interval-ms 1500] [--timeout-ms 5000] [--verbose]
import { mkdtemp, rename, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { startEchoServers } from '../ftest/echo-server.ts';
import { ping } from '../ftest/ping.ts';
import { simulate } from '../ftest/simulate.ts';
import type { Failure } from '../ftest/failure.ts';
import { startDaemon } from './rollout-check-lib/daemon-child.ts';
import { parseOptions } from './rollout-check-lib/options.ts';
import { effectWindowMs, median, ms, timeToEffect } from './rollout-check-lib/time-to-effect.ts';
import type { Effect } from './rollout-check-lib/time-to-effect.ts';
import { TLS_APP, TLS_NAMES, startTlsApp } from './rollout-check-lib/tls-app.ts';
import { tlsLoad } from './rollout-check-lib/tls-load.ts';
import { CounterClient, startPlainEcho } from '../daemon/testing-streams.ts';
import net from 'node:net';
import { once } from 'node:events';
import { runCheck, verdict } from './rollout-check-lib/verdict.ts';

/** Long-lived connections through the "long" app (rolled out by every rewrite): each echoes a counter every 100 ms. */
const LONG_CONNECTIONS = 20;

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));
const target = (port: number) => ({ host: '127.0.0.1', port, label: `127.0.0.1:${port}` });

/** Which target answered a fresh connection to `port` ('refused', 'failed' otherwise). */
async function probe(port: number, timeoutMs: number): Promise<string> {
  const r = await ping({ target: target(port), data: 'probe', timeoutMs });
  if (r.ok) return r.reply.toString().split(':')[0]!;
  return r.failure.kind === 'refused' ? 'refused' : `failed (${r.failure.message})`;
}

async function main(): Promise<number> {
  const opts = parseOptions(process.argv.slice(2));
  const windowMs = effectWindowMs(opts.effectMs);
  const dir = await mkdtemp(join(tmpdir(), 'fproxy-rollout-check-'));
  // First, as the likeliest to fail (it runs openssl); nothing else is running yet then.
  const tlsApp = await startTlsApp(dir).catch(async (err: unknown) => {
    await rm(dir, { recursive: true, force: true });
    throw err;
  });
  const setA = await startEchoServers({ ports: [0, 0], host: '127.0.0.1', tag: true });
  const setB = await startEchoServers({ ports: [0, 0], host: '127.0.0.1', tag: true });
  const steadyTargets = await startEchoServers({ ports: [0], host: '127.0.0.1', tag: true });
  const longEcho = await startPlainEcho();
  const configPath = join(dir, 'config.json');
  const sets = [setA.ports, setB.ports];
  // Workers are written out for every app: with the default (the CPU count) a 1-CPU machine
  // would run single-worker apps and the check would prove less than it says.
  const configFor = (i: number) => ({
    Apps: [
      { Name: 'rolling', Ports: i % 4 >= 2 ? [0, 0] : [0], Targets: sets[i % 2]!.map((p) => `127.0.0.1:${p}`), Workers: opts.workers, DrainTimeoutMs: 5000 },
      { Name: 'steady', Ports: [0], Targets: steadyTargets.ports.map((p) => `127.0.0.1:${p}`), Workers: opts.workers },
      tlsApp.config(i, 0, opts.workers),
      // Rolled out by every rewrite (ConnectTimeoutMs changes): its long-lived connections are handed over.
      { Name: 'long', Ports: [0], Targets: [`127.0.0.1:${longEcho.port}`], Workers: opts.workers, DrainTimeoutMs: 60_000, ConnectTimeoutMs: 5000 + i },
    ],
  });
  const writeConfig = async (i: number) => {
    const tmp = `${configPath}.${i}.tmp`;
    await writeFile(tmp, JSON.stringify(configFor(i), null, 2));
    await rename(tmp, configPath);
  };
  await writeConfig(0);

  // Spares for two rewrites: each rewrite rolls out two apps, each taking `workers` of them.
  // The long-lived connections are handed over at every rollout, on either engine: the default
  // (native) unless FPROXY_ENGINE says otherwise.
  const engine = process.env.FPROXY_ENGINE ?? 'native';
  const daemon = startDaemon(configPath, { FPROXY_SPARE_LISTENERS: String(Math.min(64, 4 * opts.workers)), FPROXY_ENGINE: engine }, opts.verbose);
  const app = daemon.app;
  const appNames = ['rolling', 'steady', TLS_APP];

  const problems: string[] = [];
  const abort = new AbortController();
  let probes = 0;
  let tlsProbes = 0;
  const effects: number[] = [];
  const tlsEffects: number[] = [];
  const longClients: CounterClient[] = [];
  /**
   * Per rewrite: ms until the long app's old generation had exited, from its drain start (the new
   * generation seen running: the daemon drains the old one right then) and from the write.
   */
  const oldGone: Promise<{ afterDrain: number; afterWrite: number } | undefined>[] = [];
  try {
    for (const deadline = Date.now() + 60_000; daemon.adminPort() === 0 || !(await Promise.all(appNames.map(app))).every((a) => a?.state === 'running'); await sleep(25)) {
      if (Date.now() > deadline || daemon.child.exitCode !== null) throw new Error(`the daemon did not start its apps (${appNames.join(', ')}) within 60 s`);
    }
    // The kernel picked every port (Ports: [0]); they must stay the same through every rollout.
    const firstPorts = (await Promise.all(['rolling', 'steady', TLS_APP].map(app))).map((a) => a!.ports[0]!);
    const [mainPort, steadyPort, tlsPort] = [firstPorts[0]!, firstPorts[1]!, firstPorts[2]!];
    let extraPort: number | undefined;
    const checkWorkers = async (when: string) => {
      for (const name of appNames) {
        const a = await app(name);
        if (a?.workers !== opts.workers || a.pids.length !== opts.workers) problems.push(`${when}, app ${name} runs ${a?.pids.length} of ${a?.workers} workers (wanted ${opts.workers})`);
      }
    };
    await checkWorkers('at start');
    for (const deadline = Date.now() + 60_000; (await app('long'))?.state !== 'running'; await sleep(25)) {
      if (Date.now() > deadline) throw new Error('the long app did not start within 60 s');
    }
    const longPort = (await app('long'))!.ports[0]!;
    for (let n = 0; n < LONG_CONNECTIONS; n++) {
      const socket = net.connect({ port: longPort, host: '127.0.0.1' });
      await once(socket, 'connect');
      longClients.push(new CounterClient(socket, `long-lived connection ${n}`));
    }
    longClients.forEach((c) => c.start());
    const steadyPids = (await app('steady'))!.pids;
    const firstFailures: Failure[] = [];
    const load = simulate({
      target: target(mainPort),
      concurrency: opts.concurrency,
      durationMs: 3_600_000,
      timeoutMs: opts.timeoutMs,
      signal: abort.signal,
      onError: (f) => {
        if (firstFailures.length < 10) firstFailures.push(f);
      },
    });
    const firstTlsFailures: Failure[] = [];
    const tlsRun = tlsLoad({
      port: tlsPort,
      servernames: TLS_NAMES,
      concurrency: opts.tlsConcurrency,
      ratePerSec: opts.tlsRate,
      durationMs: 3_600_000,
      timeoutMs: opts.timeoutMs,
      signal: abort.signal,
      judge: tlsApp.judge,
      onError: (f) => {
        if (firstTlsFailures.length < 10) firstTlsFailures.push(f);
      },
    });

    for (let i = 1; i <= opts.rewrites; i++) {
      const wanted = new Set(sets[i % 2]!.map(String));
      const extraWanted = i % 4 >= 2;
      const tlsWanted = TLS_NAMES.map((name) => tlsApp.wantedTag(i, name));
      const writtenAt = performance.now();
      await writeConfig(i);
      oldGone.push((async () => {
        let drainAt: number | undefined;
        for (const deadline = Date.now() + 90_000; Date.now() < deadline; await sleep(20)) {
          const long = (await daemon.apps()).filter((a) => a.name === 'long');
          if (drainAt === undefined && long.some((a) => a.generation === i + 1 && a.state === 'running')) drainAt = performance.now();
          if (drainAt !== undefined && long.every((a) => a.drainingPids.length === 0)) return { afterDrain: performance.now() - drainAt, afterWrite: performance.now() - writtenAt };
        }
        return undefined;
      })());
      if (opts.verbose) process.stderr.write(`rewrite ${i}: written at ${new Date().toISOString()}\n`);
      // Each app is probed in its own rounds: fresh connections must reach the new targets, the
      // extra port must answer or refuse as it should, and each SNI must reach its route's new
      // target, shown by its tag and its certificate.
      const [tcp, tls] = await Promise.all([
        timeToEffect(writtenAt, windowMs, async () => {
          // A re-added extra port is a new 0: the kernel picks it again, /apps says which.
          const ports = (await app('rolling'))?.ports ?? [];
          if (extraWanted && ports[1] !== undefined && ports[1] !== 0) extraPort = ports[1];
          const extraNow = extraWanted ? ports[1] : extraPort;
          const [tag, extra] = await Promise.all([probe(mainPort, opts.timeoutMs), extraNow === undefined ? (extraWanted ? 'not bound yet' : 'refused') : probe(extraNow, opts.timeoutMs)]);
          probes += 2;
          const ok = ports[0] === mainPort && wanted.has(tag) && (extraWanted ? ports.length === 2 && wanted.has(extra) : ports.length === 1 && extra === 'refused');
          return { ok, seen: `ports ${ports.join(', ')}; main port ${mainPort}: ${tag}, extra port ${extraNow ?? '-'}: ${extra}` };
        }),
        timeToEffect(writtenAt, windowMs, async () => {
          const tags = await Promise.all(TLS_NAMES.map((name) => tlsApp.probe(tlsPort, name, opts.timeoutMs)));
          tlsProbes += tags.length;
          return { ok: tags.every((tag, n) => tag === tlsWanted[n]), seen: tags.map((tag, n) => `${TLS_NAMES[n]}: ${tag}`).join(', ') };
        }),
      ]);
      const results: [string, Effect, number[], string][] = [
        ['rolling', tcp, effects, `targets ${[...wanted].join(', ')}, extra port ${extraWanted ? 'open' : 'closed'}`],
        [TLS_APP, tls, tlsEffects, TLS_NAMES.map((name, n) => `${name} → ${tlsWanted[n]}`).join(', ')],
      ];
      for (const [name, { effectMs, seen }, list, expected] of results) {
        if (effectMs === undefined) problems.push(`rewrite ${i}: app ${name}'s new config (${expected}) had no effect within ${windowMs / 1000} s; last probes: ${seen}`);
        else if (effectMs > opts.effectMs) problems.push(`rewrite ${i}: app ${name}'s new config took effect after ${Math.round(effectMs)} ms (limit ${opts.effectMs} ms)`);
        if (effectMs !== undefined) list.push(effectMs);
      }
      if (opts.verbose) process.stderr.write(`rewrite ${i}: effect after ${ms(tcp.effectMs)} (rolling), ${ms(tls.effectMs)} (${TLS_APP})\n`);
      // Let the daemon's spare listeners refill between rewrites, as between real edits.
      await sleep(Math.max(0, opts.intervalMs - (performance.now() - writtenAt)));
    }

    abort.abort();
    const [summary, tlsSummary] = await Promise.all([load, tlsRun]);
    await Promise.all(longClients.map((c) => c.stop()));
    const cut = longClients.filter((c) => c.problem !== undefined);
    if (cut.length > 0) problems.push(`${cut.length} long-lived connections cut or corrupted; first: ${cut.slice(0, 3).map((c) => c.problem).join('; ')}`);
    const gone = await Promise.all(oldGone);
    const goneMs = gone.filter((x) => x !== undefined).map((x) => x.afterWrite);
    const livedMs = gone.filter((x) => x !== undefined).map((x) => x.afterDrain);
    if (goneMs.length < gone.length) problems.push(`${gone.length - goneMs.length} old generations of the long app still ran 90 s after their rewrite`);
    const rolling = await app('rolling');
    const steady = await app('steady');
    const tlsStatus = await app(TLS_APP);
    await checkWorkers('at the end');
    if (steady?.ports[0] !== steadyPort || rolling?.ports[0] !== mainPort || tlsStatus?.ports[0] !== tlsPort) problems.push(`a kernel-picked port changed: rolling ${mainPort} → ${rolling?.ports[0]}, steady ${steadyPort} → ${steady?.ports[0]}, ${TLS_APP} ${tlsPort} → ${tlsStatus?.ports[0]}`);
    if (JSON.stringify(steady?.pids) !== JSON.stringify(steadyPids)) problems.push(`the steady app's pids changed: ${steadyPids} → ${steady?.pids}`);
    if (rolling?.lastError) problems.push(`the rolling app reports an error: ${rolling.lastError.message}`);
    if (tlsStatus?.lastError) problems.push(`the ${TLS_APP} app reports an error: ${tlsStatus.lastError.message}`);
    if (summary.errors > 0) problems.push(`${summary.errors} connection failures: ${JSON.stringify(summary.errorsByKind)}; first: ${firstFailures.map((f) => f.message).join('; ')}`);
    if (tlsSummary.errors > 0) problems.push(`${tlsSummary.errors} TLS connection failures: ${JSON.stringify(tlsSummary.errorsByKind)}; first: ${firstTlsFailures.map((f) => f.message).join('; ')}`);
    const rollouts = rolling?.rollouts ?? 0;
    const tlsRollouts = tlsStatus?.rollouts ?? 0;
    if (rollouts < opts.rewrites) problems.push(`only ${rollouts} rollouts of the rolling app for ${opts.rewrites} rewrites`);
    if (tlsRollouts < opts.rewrites) problems.push(`only ${tlsRollouts} rollouts of the ${TLS_APP} app for ${opts.rewrites} rewrites`);

    const line = (label: string, value: string) => `${`${label}:`.padEnd(28)}${value}`;
    const effect = (xs: number[]) => `${ms(xs.length ? Math.max(...xs) : undefined)} (median ${ms(median(xs))}, limit ${opts.effectMs} ms)`;
    const byTag = Object.entries(tlsSummary.okByTag).sort().map(([tag, n]) => `${tag} ${n}`).join(', ');
    process.stdout.write(
      [
        line('connections made', `${summary.exchanges} (+ ${probes} probes)`),
        line('failures', `${summary.errors}`),
        line('tls connections made', `${tlsSummary.exchanges} (+ ${tlsProbes} probes)`),
        line('tls failures', `${tlsSummary.errors}`),
        line('long-lived cut', `${cut.length} of ${longClients.length} (each echoing a counter every 100 ms, checked end to end; DrainTimeoutMs 60 s)`),
        line('old long gen after drain', `lived ${ms(median(livedMs))} median, ${ms(livedMs.length ? Math.max(...livedMs) : undefined)} max from its drain start (connections handed over)`),
        line('old long generation gone', `${ms(median(goneMs))} median, ${ms(goneMs.length ? Math.max(...goneMs) : undefined)} max after the rewrite (new generation started, connections handed over)`),
        line('engine', `${engine} (FPROXY_ENGINE=${process.env.FPROXY_ENGINE ?? ''}; default native)`),
        line('rollouts', `${rollouts} (${opts.rewrites} rewrites)`),
        line('tls rollouts', `${tlsRollouts} (${opts.rewrites} rewrites)`),
        line('workers', `${opts.workers} per app (${appNames.join(', ')})`),
        line('slowest time-to-effect', effect(effects)),
        line('tls slowest time-to-effect', effect(tlsEffects)),
        line('load', `${Math.round(summary.exchangesPerSec)} exchanges/s at concurrency ${opts.concurrency}, rtt p99 ${summary.rtt.p99} ms`),
        line('tls load', `${Math.round(tlsSummary.exchangesPerSec)} handshakes+exchanges/s at concurrency ${opts.tlsConcurrency} (${opts.tlsRate ? `at most ${opts.tlsRate}/s` : 'no rate cap'}), rtt p99 ${tlsSummary.rtt.p99} ms; answered by ${byTag || 'none'}`),
      ].join('\n') + '\n',
    );
  } catch (err) {
    problems.push((err as Error).message);
  } finally {
    abort.abort();
    const stopProblem = await daemon.stop();
    if (stopProblem !== undefined) problems.push(stopProblem);
    longClients.forEach((c) => void c.stop());
    await Promise.all([setA.close(), setB.close(), steadyTargets.close(), tlsApp.close(), longEcho.close()]);
    await rm(dir, { recursive: true, force: true });
  }
  return verdict(problems, opts.verbose, daemon.tail);
}

await runCheck('rollout-check', main);
