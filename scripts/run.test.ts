// `make run` + Ctrl-C: the terminal sends SIGINT to the whole process group; the echo targets must
// outlive the daemon's drain so clients still connected through it finish cleanly.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { once } from 'node:events';
import net from 'node:net';
import { writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { tempDir } from '../proxy/testing.ts';
import { appConfig, waitFor as poll, writeConfig } from '../daemon/testing.ts';

const RUN_SH = fileURLToPath(new URL('./run.sh', import.meta.url));

function alive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch {
    return false;
  }
}

/** One line in, the reply out, on a connection kept open. */
async function roundTrip(socket: net.Socket, data: string): Promise<string> {
  socket.write(data);
  const [chunk] = (await Promise.race([once(socket, 'data'), once(socket, 'close').then(() => [Buffer.from('<closed>')])])) as [Buffer];
  return chunk.toString();
}

test('Ctrl-C on `make run` drains the daemon before it stops the echo targets', async (t) => {
  const dir = await tempDir(t);
  // Ports the kernel picks: the echo target's (printed by `ftest serve 0`) goes into the config
  // once known, the app's is read back from /apps.
  const configPath = join(dir, 'config.json');
  await writeFile(configPath, JSON.stringify({ Apps: [] }));
  // detached: its own process group, as a terminal's foreground job is.
  const child = spawn('bash', [RUN_SH], {
    detached: true,
    stdio: ['ignore', 'pipe', 'pipe'],
    env: { PATH: process.env.PATH ?? '/usr/bin:/bin', RUN_TARGET_PORTS: '0', FPROXY_CONFIG_PATH: configPath, FPROXY_ADMIN_ADDR: '127.0.0.1:0', FPROXY_SPARE_LISTENERS: '0', FPROXY_LOG_FORMAT: 'json', FPROXY_MIGRATE_REQ: 'leave' },
  });
  const exited = once(child, 'exit');
  let stderr = '';
  const logs: Record<string, unknown>[] = [];
  const plain: string[] = [];
  child.stderr.on('data', (d: Buffer) => (stderr += d.toString()));
  child.stdout.setEncoding('utf8');
  let rest = '';
  child.stdout.on('data', (d: string) => {
    const lines = (rest + d).split('\n');
    rest = lines.pop()!;
    for (const line of lines) {
      try {
        logs.push(JSON.parse(line) as Record<string, unknown>);
      } catch {
        plain.push(line);
      }
    }
  });
  const pids = new Set<number>();
  t.after(async () => {
    for (const pid of pids) {
      try {
        process.kill(pid, 'SIGKILL');
      } catch {}
    }
    try {
      process.kill(-child.pid!, 'SIGKILL');
    } catch {}
  });
  const servePid = Number((await poll(() => /\(pid (\d+)\)/.exec(stderr), 10_000, 'the echo targets\' pid'))[1]);
  pids.add(servePid);
  const target = Number((await poll(() => plain.map((l) => /^listening 127\.0\.0\.1:(\d+)/.exec(l)).find(Boolean), 10_000, 'the echo target\'s port'))[1]);
  const admin = await poll(() => logs.find((l) => l.proc === 'daemon' && typeof l.admin === 'string')?.admin as string | undefined, 10_000, 'the admin address');
  const daemonPid = logs.find((l) => l.proc === 'daemon')!.pid as number;
  pids.add(daemonPid);
  await writeConfig(configPath, { Apps: [appConfig('web', [0], [target], { DrainTimeoutMs: 20_000 })] }, 'atomic');
  const port = await poll(async () => {
    const apps = (await (await fetch(`http://${admin}/apps`)).json()) as { name: string; state: string; ports: number[] }[];
    const web = apps.find((a) => a.name === 'web');
    return web?.state === 'running' && web.ports[0] ? web.ports[0] : undefined;
  }, 15_000, 'the app running');

  // A client connected through the daemon, mid-conversation.
  const client = await poll(() => new Promise<net.Socket | undefined>((resolve) => {
    const s = net.connect({ port, host: '127.0.0.1' });
    s.once('connect', () => resolve(s));
    s.once('error', () => resolve(undefined));
  }), 15_000, 'the app serving');
  t.after(() => client.destroy());
  assert.equal(await roundTrip(client, 'one'), `${target}:one`);

  process.kill(-child.pid!, 'SIGINT'); // what Ctrl-C does
  // The listener reports it is draining with our connection open (a structured field, not wording).
  await poll(() => logs.some((l) => l.proc === 'listener' && l.activeConnections === 1 && l.reason !== undefined), 10_000, 'the listener draining');
  assert.ok(alive(servePid), 'the echo targets are still up while the daemon drains');
  assert.equal(await roundTrip(client, 'two'), 'two', 'the draining connection still reaches its target');
  assert.ok(alive(daemonPid), 'the daemon waits for the open connection');

  client.end();
  const [code] = await exited;
  assert.equal(code, 0, stderr);
  await poll(() => !alive(servePid) && !alive(daemonPid), 5000, 'the daemon and the echo targets gone');
  assert.ok(logs.every((l) => l.msg !== 'second stop signal while draining; exiting now'), 'the daemon saw one stop signal');
});
