// Makes docs/dashboard.png (the README's picture of the dashboard): echo targets, a daemon with two
// apps on a temp config, some load (ftest's simulate), one target that goes away, one rollout,
// then a screenshot of GET / in Debian's headless Chromium.
// Usage: node scripts/dashboard-screenshot.ts [out.png]   (needs `make deps` for chromium)
import { spawn } from 'node:child_process';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import net from 'node:net';
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

async function freePort(): Promise<number> {
  const s = net.createServer().listen(0, '127.0.0.1');
  await new Promise((r) => s.once('listening', r));
  const port = (s.address() as net.AddressInfo).port;
  await new Promise((r) => s.close(r));
  return port;
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));
const echo = await startEchoServers({ ports: [0, 0], host: '127.0.0.1', tag: true });
const doomed = await startEchoServers({ ports: [0], host: '127.0.0.1', tag: true });
const [web, db] = [await freePort(), await freePort()];
const dir = await mkdtemp(join(tmpdir(), 'fproxy-shot-'));
const configPath = join(dir, 'config.json');
const config = (drain: number) => ({
  Apps: [
    { Name: 'web', Ports: [web], Targets: [`127.0.0.1:${echo.ports[0]}`, `127.0.0.1:${echo.ports[1]}`, `127.0.0.1:${doomed.ports[0]}`], Workers: 2, DrainTimeoutMs: drain },
    { Name: 'db', Ports: [db], Targets: [`127.0.0.1:${echo.ports[1]}`], Workers: 1 },
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
    if (line.includes('"admin endpoint listening"')) resolve(String((JSON.parse(line) as { admin: string }).admin));
  });
});
try {
  await sleep(1500);
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
