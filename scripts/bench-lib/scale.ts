// --scale: the daemon with many apps (default 200, 2 ports each, Workers 1) in front of local
// tagged echo targets. Measures: time from daemon start to every app `running` (GET /apps) and
// to every port answering through its listener; RSS and PSS of the daemon and all listeners;
// daemon and listener CPU at idle; the rollout of one app (config rewritten atomically with
// its targets changed) — time to its new generation running and serving the new target — with
// every other app's generation and pids unchanged. Figures are also given per app.
import { mkdirSync } from 'node:fs';
import { connect } from 'node:net';
import { join } from 'node:path';
import { startEchoServers } from '../../ftest/echo-server.ts';
import type { Options } from './args.ts';
import { getApps, startDaemon, writeConfigAtomically } from './fproxy.ts';
import type { AppConfig, AppStatus } from './fproxy.ts';
import { cpuSeconds, memOf, memSum, sleep, waitFor } from './proc.ts';
import { machine } from './tools.ts';
import type { Machine } from './tools.ts';

export interface ScaleResult {
  ok: boolean;
  date: string;
  machine: Machine;
  settings: { apps: number; portsPerApp: number; workers: number; listenerProcesses: number; idleS: number };
  startup: { allRunningS: number | null; allPortsServingS: number | null };
  memory: {
    daemonRssMiB: number;
    daemonPssMiB: number;
    listenersRssMiB: number;
    listenersPssMiB: number;
    sparesPssMiB: number;
    totalRssMiB: number;
    totalPssMiB: number;
    perAppRssMiB: number;
    perAppPssMiB: number;
    perListenerPssMiB: number;
    processes: number;
    listeners: number;
    spares: number;
  } | null;
  idleCpu: { seconds: number; daemonCpuS: number; listenersCpuS: number } | null;
  rollout: {
    app: string;
    runningS: number | null;
    servingNewTargetS: number | null;
    oldGenerationGoneS: number | null;
    othersUntouched: number;
    othersChanged: string[];
  } | null;
  errors: string[];
}

const PORTS_PER_APP = 2;

function appName(i: number): string {
  return `app-${String(i + 1).padStart(3, '0')}`;
}

/** Connect, send "x", read "PORT:x" back from the tagged echo target; the tag (PORT) or undefined. */
function tagThrough(port: number, timeoutMs = 3000): Promise<string | undefined> {
  return new Promise((resolve) => {
    const s = connect({ port, host: '127.0.0.1' });
    let got = '';
    const done = (tag: string | undefined) => {
      clearTimeout(timer);
      s.destroy();
      resolve(tag);
    };
    const timer = setTimeout(() => done(undefined), timeoutMs);
    s.setEncoding('utf8');
    s.on('connect', () => s.write('x'));
    s.on('data', (d: string) => {
      got += d;
      if (got.endsWith('x')) done(got.includes(':') ? got.slice(0, got.indexOf(':')) : '');
    });
    s.on('error', () => done(undefined));
    s.on('close', () => done(undefined));
  });
}

async function forEachLimited<T>(items: readonly T[], limit: number, fn: (x: T) => Promise<void>): Promise<void> {
  let next = 0;
  await Promise.all(
    Array.from({ length: Math.min(limit, items.length) }, async () => {
      while (next < items.length) await fn(items[next++] as T);
    }),
  );
}

const mib = (kib: number): number => Math.round((kib / 1024) * 10) / 10;

export async function scale(o: Options, tmp: string, log: (s: string) => void): Promise<ScaleResult> {
  const n = o.scaleApps;
  const result: ScaleResult = {
    ok: false,
    date: new Date().toISOString(),
    machine: machine(),
    settings: { apps: n, portsPerApp: PORTS_PER_APP, workers: o.scaleWorkers, listenerProcesses: n * o.scaleWorkers, idleS: o.scaleIdleS },
    startup: { allRunningS: null, allPortsServingS: null },
    memory: null,
    idleCpu: null,
    rollout: null,
    errors: [],
  };
  // Four targets shared round the apps, a fifth for the rollout.
  const echo = await startEchoServers({ ports: [0, 0, 0, 0, 0], host: '127.0.0.1', tag: true });
  const targetPorts = echo.ports.slice(0, 4);
  const rolledPort = echo.ports[4] as number;
  // Ports 0: the kernel picks each one and the daemon keeps it; /apps says which (bound below).
  const apps: AppConfig[] = Array.from({ length: n }, (_, i) => ({
    Name: appName(i),
    Ports: Array<number>(PORTS_PER_APP).fill(0),
    Targets: [`127.0.0.1:${targetPorts[i % targetPorts.length]}`],
    Workers: o.scaleWorkers,
  }));
  const dir = join(tmp, 'scale');
  mkdirSync(dir, { recursive: true });
  const config = join(dir, 'config.json');
  writeConfigAtomically(config, apps);

  log(`scale: starting the daemon with ${n} apps × ${PORTS_PER_APP} ports, Workers ${o.scaleWorkers} (${n * o.scaleWorkers} listener processes)`);
  const t0 = performance.now();
  const d = startDaemon(dir, config, 'daemon');
  const since = () => Math.round((performance.now() - t0) / 10) / 100;
  try {
    const admin = await d.admin(60_000);
    const startBudgetMs = Math.max(120_000, n * 3000); // 200 apps took ~250 s on a busy 2-core machine
    // 1. Every app running (admin) …
    await waitFor(`all ${n} apps running (GET http://${admin}/apps)`, startBudgetMs, async () => {
      if (d.proc.child.exitCode !== null) throw new Error(`the daemon exited with ${d.proc.child.exitCode}; log: ${d.logPath}`);
      const list = await getApps(admin);
      return list.length === n && list.every((a) => a.state === 'running' && a.ports.every((p) => p > 0)) ? true : undefined;
    }, 250);
    const bound = new Map((await getApps(admin)).map((a) => [a.name, [...a.ports]]));
    result.startup.allRunningS = since();
    log(`scale: all ${n} apps running after ${result.startup.allRunningS} s`);
    // … and every port answering through its listener with the right target.
    const pending = new Set(apps.flatMap((a, i) => (bound.get(a.Name) ?? []).map((p) => ({ port: p, tag: String(targetPorts[i % targetPorts.length]) }))));
    await waitFor(`all ${n * PORTS_PER_APP} ports serving`, 60_000, async () => {
      await forEachLimited([...pending], 50, async (x) => {
        if ((await tagThrough(x.port)) === x.tag) pending.delete(x);
      });
      return pending.size === 0 ? true : undefined;
    });
    result.startup.allPortsServingS = since();
    log(`scale: all ${n * PORTS_PER_APP} ports serving after ${result.startup.allPortsServingS} s`);

    // 2. Memory at rest: the daemon, the apps' listeners (from GET /apps) and any other child
    //    (spare listeners forked ahead of need).
    await sleep(2000);
    const serving = new Set((await getApps(admin)).flatMap((a) => a.pids));
    const children = d.listenerPids();
    const listeners = children.filter((p) => serving.has(p));
    const spares = children.filter((p) => !serving.has(p));
    const dm = memOf(d.pid);
    const lm = memSum(listeners);
    const sm = memSum(spares);
    const allRss = dm.rssKiB + lm.rssKiB + sm.rssKiB;
    const allPss = dm.pssKiB + lm.pssKiB + sm.pssKiB;
    result.memory = {
      daemonRssMiB: mib(dm.rssKiB),
      daemonPssMiB: mib(dm.pssKiB),
      listenersRssMiB: mib(lm.rssKiB),
      listenersPssMiB: mib(lm.pssKiB),
      sparesPssMiB: mib(sm.pssKiB),
      totalRssMiB: mib(allRss),
      totalPssMiB: mib(allPss),
      perAppRssMiB: mib(allRss / n),
      perAppPssMiB: mib(allPss / n),
      perListenerPssMiB: mib(lm.pssKiB / Math.max(1, listeners.length)),
      processes: 1 + children.length,
      listeners: listeners.length,
      spares: spares.length,
    };

    // 3. CPU at idle: nothing talks to it (not even the admin endpoint) meanwhile.
    log(`scale: measuring CPU at idle for ${o.scaleIdleS} s`);
    const dBefore = cpuSeconds([d.pid]);
    const lBefore = cpuSeconds(children);
    await sleep(o.scaleIdleS * 1000);
    result.idleCpu = {
      seconds: o.scaleIdleS,
      daemonCpuS: Math.round((cpuSeconds([d.pid]) - dBefore) * 100) / 100,
      listenersCpuS: Math.round((cpuSeconds(children) - lBefore) * 100) / 100,
    };

    // 4. Roll out one app among the many.
    const idx = Math.floor(n / 2);
    const name = appName(idx);
    const before = new Map((await getApps(admin)).map((a) => [a.name, a]));
    const old = before.get(name) as AppStatus;
    const changed = apps.map((a, i) => (i === idx ? { ...a, Targets: [`127.0.0.1:${rolledPort}`] } : a));
    log(`scale: rolling out ${name} (targets → 127.0.0.1:${rolledPort})`);
    const r0 = performance.now();
    const sinceR = () => Math.round(performance.now() - r0) / 1000;
    writeConfigAtomically(config, changed);
    const rollout: NonNullable<ScaleResult['rollout']> = { app: name, runningS: null, servingNewTargetS: null, oldGenerationGoneS: null, othersUntouched: 0, othersChanged: [] };
    result.rollout = rollout;
    await waitFor(`${name} to run a new generation`, 60_000, async () => {
      const a = (await getApps(admin)).find((x) => x.name === name);
      return a && a.generation !== old.generation && a.state === 'running' ? true : undefined;
    }, 50);
    rollout.runningS = sinceR();
    const appPorts = bound.get(name) ?? [];
    await waitFor(`${name} to serve the new target`, 30_000, async () => {
      for (const p of appPorts) if ((await tagThrough(p)) !== String(rolledPort)) return undefined;
      return true;
    }, 50);
    rollout.servingNewTargetS = sinceR();
    await waitFor(`${name}'s old generation to exit`, 60_000, () => (old.pids.every((p) => memOf(p).rssKiB === 0) ? true : undefined), 100)
      .then(() => (rollout.oldGenerationGoneS = sinceR()))
      .catch((err: Error) => result.errors.push(err.message));
    const after = new Map((await getApps(admin)).map((a) => [a.name, a]));
    for (const [appNameBefore, a] of before) {
      if (appNameBefore === name) continue;
      const b = after.get(appNameBefore);
      const same = b && b.generation === a.generation && b.state === 'running' && [...b.pids].sort().join() === [...a.pids].sort().join();
      if (same) rollout.othersUntouched++;
      else rollout.othersChanged.push(appNameBefore);
    }
    log(`scale: rollout running after ${rollout.runningS} s; ${rollout.othersUntouched}/${n - 1} other apps untouched`);
    result.ok = rollout.othersChanged.length === 0 && result.errors.length === 0;
  } catch (err) {
    result.errors.push((err as Error).message);
  } finally {
    await d.stop();
    await echo.close();
  }
  return result;
}

function f(v: number | null | undefined, digits = 1): string {
  return v === null || v === undefined ? '—' : v.toFixed(digits);
}

export function scaleMarkdown(r: ScaleResult, elapsedS: number): string {
  const n = r.settings.apps;
  const m = r.machine;
  const mem = r.memory;
  const lines = [
    `## fproxy scale — ${r.date}`,
    '',
    `Machine: ${m.cores} cores (${m.cpuModel}), ${m.memGiB} GiB, Linux ${m.kernel}; node ${m.node}.`,
    `Config: ${n} apps × ${r.settings.portsPerApp} ports, "Workers": ${r.settings.workers} → ${r.settings.listenerProcesses} listener processes; targets: local tagged echo servers.`,
    '',
    '| figure | total | per app |',
    '|---|---:|---:|',
    `| daemon start → all apps running (s) | ${f(r.startup.allRunningS, 2)} | ${r.startup.allRunningS === null ? '—' : f((r.startup.allRunningS * 1000) / n, 1) + ' ms'} |`,
    `| daemon start → all ports serving (s) | ${f(r.startup.allPortsServingS, 2)} | ${r.startup.allPortsServingS === null ? '—' : f((r.startup.allPortsServingS * 1000) / n, 1) + ' ms'} |`,
    `| RSS, daemon + all its children (MiB) | ${f(mem?.totalRssMiB)} | ${f(mem?.perAppRssMiB)} |`,
    `| PSS, daemon + all its children (MiB) | ${f(mem?.totalPssMiB)} | ${f(mem?.perAppPssMiB)} |`,
    `| daemon RSS / PSS (MiB) | ${f(mem?.daemonRssMiB)} / ${f(mem?.daemonPssMiB)} | |`,
    `| apps' listeners RSS / PSS (MiB) | ${f(mem?.listenersRssMiB)} / ${f(mem?.listenersPssMiB)} | |`,
    `| spare listeners PSS (MiB) | ${f(mem?.sparesPssMiB)} | |`,
    `| PSS per listener process (MiB) | | ${f(mem?.perListenerPssMiB)} |`,
    `| processes (daemon + listeners + spares) | ${mem ? `1 + ${mem.listeners} + ${mem.spares}` : '—'} | |`,
    `| daemon CPU at idle over ${r.settings.idleS} s (s) | ${f(r.idleCpu?.daemonCpuS, 2)} | |`,
    `| children's CPU at idle over ${r.settings.idleS} s (s) | ${f(r.idleCpu?.listenersCpuS, 2)} | ${r.idleCpu ? f((r.idleCpu.listenersCpuS * 1000) / n, 1) + ' ms' : '—'} |`,
    `| rollout of ${r.rollout?.app ?? 'one app'}: config write → new generation running (s) | ${f(r.rollout?.runningS, 2)} | |`,
    `| … → serving the new target (s) | ${f(r.rollout?.servingNewTargetS, 2)} | |`,
    `| … → old generation exited (s) | ${f(r.rollout?.oldGenerationGoneS, 2)} | |`,
    `| other apps untouched (same generation and pids) | ${r.rollout ? `${r.rollout.othersUntouched}/${n - 1}` : '—'} | |`,
    '',
  ];
  if (r.rollout && r.rollout.othersChanged.length > 0) lines.push(`- CHANGED by the rollout: ${r.rollout.othersChanged.join(', ')}`);
  for (const e of r.errors) lines.push(`- ERROR: ${e}`);
  lines.push(`- Total time: ${Math.round(elapsedS)} s.`);
  return lines.join('\n') + '\n';
}
