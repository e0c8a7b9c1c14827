import assert from 'node:assert/strict';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { runCheck } from './check.ts';

let dir: string;
before(() => {
  dir = mkdtempSync(join(tmpdir(), 'fproxy-check-'));
});
after(() => rmSync(dir, { recursive: true, force: true }));

function write(name: string, config: unknown): string {
  const path = join(dir, name);
  writeFileSync(path, typeof config === 'string' ? config : JSON.stringify(config));
  return path;
}

async function check(file: string | undefined): Promise<{ code: number; log: string[]; error: string[] }> {
  const log: string[] = [];
  const error: string[] = [];
  const code = await runCheck(file, { log: (s) => log.push(s), error: (s) => error.push(s) });
  return { code, log, error };
}

describe('runCheck', () => {
  test('the summary names an app\'s health check', async () => {
    const path = write('health.json', {
      Apps: [{ Name: 'pg', Ports: [5432], Targets: ['127.0.0.2:5432'], Workers: 1, HealthCheck: { IntervalMs: 1000, Rise: 1, Port: 8008, HttpPath: '/primary' } }],
    });
    const { code, log } = await check(path);
    assert.equal(code, 0);
    assert.match(log[1] ?? '', /  health http \/primary port 8008 every 1000ms rise 1 fall 2$/);
  });

  test('a good file: exit 0, a heading and one summary line per app', async () => {
    const path = write('good.json', {
      Apps: [
        { Name: 'five-thousand', Ports: [5001, 5200], Targets: ['127.0.0.1:9001', 'localhost:9002'], Workers: 2 },
        { Name: 'six', Ports: [6001], Targets: ['[::1]:9003'], IdleTimeoutMs: 0, Workers: 1, Tls: { Mode: 'passthrough' }, SendProxyProtocol: 'v2' },
        { Name: 'local', Ports: [7001], Listen: ['127.0.0.1', '::1'], Targets: ['127.0.0.1:9001'], Workers: 1 },
      ],
    });
    const { code, log, error } = await check(path);
    assert.equal(code, 0);
    assert.deepEqual(error, []);
    assert.deepEqual(log, [
      `${path}: ok, 3 apps`,
      'five-thousand  ports 5001,5200  targets 127.0.0.1:9001,localhost:9002  connect 5000ms idle 3600000ms workers 2',
      'six            ports 6001  targets [::1]:9003  connect 5000ms idle 0ms workers 1  tls passthrough  send-proxy v2',
      'local          ports 7001 on 127.0.0.1,::1  targets 127.0.0.1:9001  connect 5000ms idle 3600000ms workers 1',
    ]);
  });

  test('shows a non-default strategy, target options, outlier detection off and OnTargetDown', async () => {
    const path = write('pool.json', {
      Apps: [{
        Name: 'db', Ports: [5432], Workers: 1, Strategy: 'first', OutlierDetection: false, OnTargetDown: 'close',
        Targets: ['127.0.0.2:5432', { Address: '127.0.0.3:5432', Weight: 3 }, { Address: '127.0.0.4:5432', Backup: true }],
      }],
    });
    const { code, log } = await check(path);
    assert.equal(code, 0);
    assert.equal(log[1], 'db  ports 5432  targets 127.0.0.2:5432,127.0.0.3:5432(weight 3),127.0.0.4:5432(backup)  connect 5000ms idle 3600000ms workers 1  strategy first  outlier-detection off  on-target-down close');
  });

  test('a bad file: exit 1 and every problem with its path, nothing on stdout', async () => {
    const path = write('bad.json', {
      Apps: [
        { Name: 'a', Ports: [5001, 70000], Targets: ['db'] },
        { Name: 'b', Ports: [5001], targets: ['x:1'] },
      ],
    });
    const { code, log, error } = await check(path);
    assert.equal(code, 1);
    assert.deepEqual(log, []);
    assert.deepEqual(error.join('\n').split('\n'), [
      `Invalid config ${path} (4 problems):`,
      '  Apps[0].Ports[1]: port 70000 is outside 0–65535 (0: a free port the kernel picks)',
      '  Apps[0].Targets[0]: target "db" has no port: write it as "db:PORT"',
      '  Apps[1].targets: unknown key "targets": did you mean "Targets"? (keys are case-sensitive)',
      '  Apps[1].Ports[0]: port 5001 of app "b" is already used by app "a" (Apps[0].Ports[0]): each port belongs to one app',
    ]);
  });

  test('invalid JSON: exit 1 with line and column', async () => {
    const { code, error } = await check(write('broken.json', '{"Apps": [\n}'));
    assert.equal(code, 1);
    assert.match(error.join('\n'), /invalid JSON at line 2, column 1/);
  });

  test('a missing file: exit 1 saying it cannot be read', async () => {
    const { code, error } = await check(join(dir, 'absent.json'));
    assert.equal(code, 1);
    assert.match(error.join('\n'), /^Cannot read config file .*absent\.json:\n {2}no such file/);
  });

  test('without a file argument, reads FPROXY_CONFIG_PATH', async (t) => {
    const path = write('from-env.json', { Apps: [] });
    const saved = process.env.FPROXY_CONFIG_PATH;
    t.after(() => {
      if (saved === undefined) delete process.env.FPROXY_CONFIG_PATH;
      else process.env.FPROXY_CONFIG_PATH = saved;
    });
    process.env.FPROXY_CONFIG_PATH = path;
    const { code, log } = await check(undefined);
    assert.equal(code, 0);
    assert.deepEqual(log, [`${path}: ok, 0 apps`]);
  });
});
