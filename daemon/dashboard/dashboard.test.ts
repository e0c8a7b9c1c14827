// The dashboard in a real browser (Debian's headless Chromium, through playwright-core): it renders
// the apps, shows a target going down, and comes back by itself after a daemon restart.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { exchange, startEcho } from '../../proxy/testing.ts';
import { appConfig, waitFor as poll, startTestDaemon } from '../testing.ts';
import { chromiumMissing, launchChromium } from './headless-chromium.ts';

test('the dashboard shows the apps, a target going down, and survives a daemon restart', { skip: chromiumMissing() }, async (t) => {
  const a = await startEcho('a');
  const b = await startEcho('b');
  t.after(() => a.close());
  t.after(() => b.close());
  const config = { Apps: [appConfig('web', [0], [a.port, b.port], { Workers: 2 }), appConfig('db', [0], [a.port])] };
  const d = await startTestDaemon(t, config);
  await poll(async () => (await d.apps()).filter((x) => x.state === 'running').length === 2, 15_000, 'both apps running');
  const [web] = await d.ports('web');

  const browser = await launchChromium();
  t.after(() => browser.close());
  const page = await browser.context.newPage();
  const errors: string[] = [];
  page.on('pageerror', (e) => errors.push(e.message));
  await page.goto(`http://127.0.0.1:${d.adminPort}/`);

  // 1. Every app with its state, generation, workers and ports; every target.
  await page.waitForSelector('[data-app="web"][data-state="running"]', { timeout: 10_000 });
  await page.waitForSelector('[data-app="db"][data-state="running"]', { timeout: 10_000 });
  const webText = await page.textContent('[data-app="web"]');
  assert.match(webText!, /generation 1 · 2\/2 workers · ports /);
  assert.ok(webText!.includes(String(web)));
  for (const port of [a.port, b.port]) assert.equal(await page.getAttribute(`[data-app="web"] [data-target="127.0.0.1:${port}"]`, 'data-target-state'), 'up');
  assert.equal(await page.getAttribute('#conn', 'data-state'), 'live');

  // 2. Target b goes away; connections keep coming (retried on a). The page says b is failing —
  // or ejected, once passive health has taken it out in the workers (which of the two a sample
  // catches first depends on how the kernel spread the connections over the workers).
  await b.close();
  const bRow = `[data-app="web"] [data-target="127.0.0.1:${b.port}"]`;
  await poll(async () => {
    assert.equal((await exchange(web!, 'x')).reply, 'a:x');
    const state = await page.getAttribute(bRow, 'data-target-state');
    return state === 'failing' || state === 'ejected';
  }, 15_000, 'target b shown as failing or ejected', 100);
  assert.equal(await page.getAttribute(`[data-app="web"] [data-target="127.0.0.1:${a.port}"]`, 'data-target-state'), 'up');
  assert.notEqual(await page.textContent('[data-app="web"] [data-figure="total"]'), '0', 'connections counted');

  // 3. The daemon restarts on the same admin address: the page says it lost it, then picks up.
  d.child.kill('SIGTERM');
  await d.exited;
  await page.waitForSelector('#conn[data-state="down"]', { timeout: 10_000 });
  const d2 = await startTestDaemon(t, config, { env: { FPROXY_ADMIN_ADDR: `127.0.0.1:${d.adminPort}` } });
  await page.waitForSelector('#conn[data-state="live"]', { timeout: 15_000 });
  await poll(async () => (await page.textContent('#daemon'))?.includes(`daemon pid ${d2.pid}`), 15_000, 'the new daemon on the page');
  await page.waitForSelector('[data-app="web"][data-state="running"]', { timeout: 15_000 });
  assert.deepEqual(errors, [], 'no script errors');
});
