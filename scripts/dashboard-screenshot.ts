// Makes docs/dashboard.png (the README's picture of the dashboard): echo targets, a daemon with two
// apps on a temp config, some load (ftest's simulate), one target that goes away, one rollout,
// then a screenshot of GET / in Debian's headless Chromium.
// Usage: node scripts/dashboard-screenshot.ts [out.png]   (needs `make deps` for chromium)
import { spawn } from 'node:child_process';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createInterface } from 'node:readline';
import { chromiumMissing, launchChromium } from '../daemon/dashboard/headless-chromium.ts';
import { parseTarget } from '../ftest/address.ts';
import { startEchoServers } from '../ftest/echo-server.ts';
import { simulate } from '../ftest/simulate.ts';

const out = process.argv[2] ?? new URL('../docs/dashboard.png', import.meta.url).pathname;
const missing = chromiumMissing();
if (missing) {
  console.error(missing);
  process.exit(1);
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));
const echo = await startEchoServers({ ports: [0, 0], host: '127.0.0.1', tag: true });
const doomed = await startEchoServers({ ports: [0], host: '127.0.0.1', tag: true });
const dir = await mkdtemp(join(tmpdir(), 'fproxy-shot-'));
const configPath = join(dir, 'config.json');
const config = (drain: number) => ({
  Apps: [
    { Name: 'web', Ports: [0], Targets: [`127.0.0.1:${echo.ports[0]}`, `127.0.0.1:${echo.ports[1]}`, `127.0.0.1:${doomed.ports[0]}`], Workers: 2, DrainTimeoutMs: drain },
    { Name: 'db', Ports: [0], Targets: [`127.0.0.1:${echo.ports[1]}`], Workers: 1 },
  ],
});
await writeFile(configPath, JSON.stringify(config(2000)));
const daemon = spawn(process.execPath, [new URL('../daemon/main.ts', import.meta.url).pathname], {
  env: { PATH: process.env.PATH, FPROXY_CONFIG_PATH: configPath, FPROXY_ADMIN_ADDR: '127.0.0.1:0', FPROXY_LOG_FORMAT: 'json' },
  stdio: ['ignore', 'pipe', 'inherit'],
});
const admin = await new Promise<string>((resolve, reject) => {
  daemon.once('exit', () => reject(new Error('daemon exited')));
  createInterface({ input: daemon.stdout! }).on('line', (line) => {
    if (!line.startsWith('{')) return;
    const l = JSON.parse(line) as { event?: string; address?: string };
    if (l.event === 'admin-listening' && l.address !== undefined) resolve(l.address);
  });
});
try {
  // Ports 0: the kernel picks them; /apps says which, once both apps run.
  const ports = async (): Promise<[number, number] | undefined> => {
    const apps = (await (await fetch(`http://${admin}/apps`)).json()) as { name: string; state: string; ports: number[] }[];
    const w = apps.find((a) => a.name === 'web');
    const d = apps.find((a) => a.name === 'db');
    return w?.state === 'running' && d?.state === 'running' ? [w.ports[0]!, d.ports[0]!] : undefined;
  };
  let found: [number, number] | undefined;
  for (let i = 0; i < 150 && found === undefined; i++) {
    found = await ports();
    if (found === undefined) await sleep(100);
  }
  if (found === undefined) throw new Error('the apps did not start within 15 s');
  const [web, db] = found;
  const load = (port: number, ms: number, c: number) => simulate({ target: parseTarget(`127.0.0.1:${port}`), concurrency: c, durationMs: ms, timeoutMs: 2000 });
  const running = [load(web, 16_000, 6), load(db, 16_000, 2)];
  await sleep(3000);
  await doomed.close();
  await sleep(2000);
  await writeFile(configPath, JSON.stringify(config(2001)));
  const browser = await launchChromium({ width: 1200, height: 900 });
  try {
    const page = await browser.context.newPage();
    await page.goto(`http://${admin}/`);
    await page.waitForSelector('[data-app="web"]');
    // Under load, a few seconds after the target went away and the rollout.
    await sleep(6000);
    await page.screenshot({ path: out, fullPage: true });
    console.log(`wrote ${out}`);
  } finally {
    await browser.close();
  }
  await Promise.all(running);
} finally {
  daemon.kill('SIGTERM');
  await new Promise((r) => daemon.once('exit', r));
  await echo.close();
  await rm(dir, { recursive: true, force: true });
}
