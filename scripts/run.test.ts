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
  // Port 0 everywhere (no bind-release-rebind): the echo target's port is read from `ftest serve`'s
  // line, then the config is rewritten to point at it, and the app's port is read from the listener.
  const configPath = join(dir, 'config.json');
  const config = (target: number) => ({ Apps: [appConfig('web', [0], [target], { DrainTimeoutMs: 20_000 })] });
  // No app until the echo target's port is known: one generation only, so no connection can land
  // on a placeholder generation still bound beside the real one (the kernel would pick either).
  await writeFile(configPath, JSON.stringify({ Apps: [] }));
  // detached: its own process group, as a terminal's foreground job is.
  const child = spawn('bash', [RUN_SH], {
    detached: true,
    stdio: ['ignore', 'pipe', 'pipe'],
    env: { PATH: process.env.PATH ?? '/usr/bin:/bin', RUN_TARGET_PORTS: '0', FPROXY_CONFIG_PATH: configPath, FPROXY_ADMIN_ADDR: '127.0.0.1:0', FPROXY_SPARE_LISTENERS: '0', FPROXY_LOG_FORMAT: 'json' },
  });
  const exited = once(child, 'exit');
  let stderr = '';
  const logs: Record<string, unknown>[] = [];
  child.stderr.on('data', (d: Buffer) => (stderr += d.toString()));
  child.stdout.setEncoding('utf8');
  let rest = '';
  let target: number | undefined;
  child.stdout.on('data', (d: string) => {
    const lines = (rest + d).split('\n');
    rest = lines.pop()!;
    for (const line of lines) {
      const serving = /^listening 127\.0\.0\.1:(\d+)/.exec(line);
      if (serving) target = Number(serving[1]);
      try {
        logs.push(JSON.parse(line) as Record<string, unknown>);
      } catch {}
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
  const daemonPid = await poll(() => logs.find((l) => l.proc === 'daemon')?.pid as number | undefined, 10_000, 'the daemon\'s first log line');
  pids.add(daemonPid);
  const targetPort = await poll(() => target, 10_000, 'the echo target\'s port');
  // The empty config applied means the daemon watches the file: an edit now is seen.
  await poll(() => logs.some((l) => l.proc === 'daemon' && l.ok === true && typeof l.hash === 'string'), 15_000, 'the first config applied');
  await writeConfig(configPath, config(targetPort), 'atomic');
  const wanted = `127.0.0.1:${targetPort}`;
  const listening = await poll(() => logs.find((l) => l.proc === 'listener' && Array.isArray(l.targets) && (l.targets as string[]).includes(wanted) && Array.isArray(l.ports)), 15_000, 'a listener for the echo target');
  const port = (listening.ports as number[])[0]!;

  // A client connected through the daemon, mid-conversation.
  const client = await poll(() => new Promise<net.Socket | undefined>((resolve) => {
    const s = net.connect({ port, host: '127.0.0.1' });
    s.once('connect', () => resolve(s));
    s.once('error', () => resolve(undefined));
  }), 15_000, 'the app serving');
  t.after(() => client.destroy());
  // A reset shows as "<closed>" in a round trip and fails the assertion there, not as a crash.
  const clientErrors: string[] = [];
  client.on('error', (err: NodeJS.ErrnoException) => clientErrors.push(err.code ?? err.message));
  assert.equal(await roundTrip(client, 'one'), `${targetPort}:one`);

  process.kill(-child.pid!, 'SIGINT'); // what Ctrl-C does
  // The listener reports it is draining with our connection open (a structured field, not wording).
  await poll(() => logs.some((l) => l.proc === 'listener' && l.activeConnections === 1 && l.reason !== undefined), 10_000, 'the listener draining');
  assert.ok(alive(servePid), 'the echo targets are still up while the daemon drains');
  assert.equal(await roundTrip(client, 'two'), 'two', 'the draining connection still reaches its target');
  assert.ok(alive(daemonPid), 'the daemon waits for the open connection');

  client.end();
  const [code] = await exited;
  assert.deepEqual(clientErrors, [], 'the client saw no reset');
  assert.equal(code, 0, stderr);
  await poll(() => !alive(servePid) && !alive(daemonPid), 5000, 'the daemon and the echo targets gone');
  assert.ok(logs.every((l) => l.event !== 'second-stop-signal'), 'the daemon saw one stop signal');
});
