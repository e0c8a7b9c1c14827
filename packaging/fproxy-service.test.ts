// The shipped systemd unit: systemd itself accepts it (systemd-analyze verify, where installed),
// and it keeps the promises the README makes (reload = SIGHUP, a stop timeout above the drain).
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { readFile, stat, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';
import { SPEC_DEFAULTS } from '../proxy/spec.ts';
import { tempDir } from '../proxy/testing.ts';

const UNIT = fileURLToPath(new URL('./fproxy.service', import.meta.url));
const REPO = fileURLToPath(new URL('..', import.meta.url)).replace(/\/$/, '');
const run = promisify(execFile);

function directives(text: string): Map<string, string[]> {
  const map = new Map<string, string[]>();
  for (const line of text.split('\n')) {
    const m = /^([A-Za-z]+)=(.*)$/.exec(line.trim());
    if (m) map.set(m[1]!, [...(map.get(m[1]!) ?? []), m[2]!]);
  }
  return map;
}

async function hasSystemdAnalyze(): Promise<boolean> {
  try {
    await run('systemd-analyze', ['--version']);
    return true;
  } catch {
    return false;
  }
}

test('systemd-analyze verify accepts the unit with no warning', { skip: (await hasSystemdAnalyze()) ? false : 'systemd-analyze is not installed here' }, async (t) => {
  // verify checks that ExecStart exists: point the unit at this checkout instead of /opt/fproxy.
  const dir = await tempDir(t);
  const unit = join(dir, 'fproxy.service');
  await writeFile(unit, (await readFile(UNIT, 'utf8')).replaceAll('/opt/fproxy', REPO));
  const { stderr } = await run('systemd-analyze', ['verify', unit]);
  // verify exits 0 on unknown keys and bad values, but names the unit in a warning.
  assert.deepEqual(stderr.split('\n').filter((l) => l.includes('fproxy.service')), []);
});

test('the unit reloads with SIGHUP, stops with SIGTERM after the drain, and is hardened', async () => {
  const d = directives(await readFile(UNIT, 'utf8'));
  const one = (key: string) => d.get(key)?.at(-1);
  // notify: the daemon says READY=1, and after an upgrade MAINPID= (from the new daemon: NotifyAccess=all).
  assert.equal(one('Type'), 'notify');
  assert.equal(one('NotifyAccess'), 'all');
  assert.equal(one('ExecReload'), '/bin/kill -HUP $MAINPID');
  assert.equal(one('KillSignal'), 'SIGTERM');
  assert.ok(Number(one('TimeoutStopSec')) * 1000 > SPEC_DEFAULTS.drainTimeoutMs, 'stop timeout above the default drain');
  assert.ok(Number(one('LimitNOFILE')) >= 65536);
  assert.equal(one('NoNewPrivileges'), 'yes');
  assert.equal(one('ProtectSystem'), 'strict');
  assert.ok(d.get('ReadOnlyPaths')?.includes('/etc/fproxy'), 'the config directory is readable');
  assert.ok(d.get('ReadWritePaths')?.includes('/opt/fproxy/node_modules/.cache'), 'the listener bundle can be written');
  assert.equal(one('AmbientCapabilities'), 'CAP_NET_BIND_SERVICE');
  assert.equal(one('ExecStart'), '/opt/fproxy/node_modules/.bin/node /opt/fproxy/daemon/main.ts');
  assert.equal(d.get('MemoryDenyWriteExecute'), undefined, 'V8 needs W+X memory');
});

test('the Containerfile health-checks /healthz and starts the daemon entry that exists', async () => {
  // Not built here (no container engine on this machine): this checks what can be checked statically.
  const text = await readFile(join(REPO, 'Containerfile'), 'utf8');
  assert.match(text, /^FROM \S*node:24\b/m);
  assert.match(text, /^HEALTHCHECK .*\n?.*http:\/\/127\.0\.0\.1:9900\/healthz/m);
  assert.match(text, /^ENV FPROXY_CONFIG_PATH=\/etc\/fproxy\/config\.json/m);
  assert.match(text, /^STOPSIGNAL SIGTERM$/m);
  const cmd = /^CMD \["node", "([^"]+)"\]$/m.exec(text);
  assert.ok(cmd, 'a CMD that runs node on one file');
  await readFile(join(REPO, cmd[1]!)); // the entry exists
  // Every COPY source exists in the repository.
  for (const line of text.matchAll(/^COPY (.+) \S+$/gm)) for (const source of line[1]!.split(' ')) await stat(join(REPO, source));
});
