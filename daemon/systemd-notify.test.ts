// notifySystemd speaks systemd's notify protocol through systemd-notify: checked against a real
// AF_UNIX datagram socket (a python3 receiver: Node has no unix datagram sockets) standing in for
// systemd's NOTIFY_SOCKET.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync, spawn } from 'node:child_process';
import { once } from 'node:events';
import { join } from 'node:path';
import { tempDir } from '../proxy/testing.ts';
import { waitFor } from './testing.ts';
import { existsSync } from 'node:fs';
import { notifySystemd } from './systemd-notify.ts';

function has(cmd: string): boolean {
  try {
    execFileSync(cmd, ['--version'], { stdio: 'ignore' });
    return true;
  } catch {
    return false;
  }
}

test('outside systemd (no NOTIFY_SOCKET) it does nothing', async () => {
  assert.equal(await notifySystemd({}, { ready: true, mainPid: 1 }), undefined);
});

test('sends MAINPID and READY=1 to NOTIFY_SOCKET', { skip: has('systemd-notify') && has('python3') ? false : 'needs systemd-notify and python3' }, async (t) => {
  const dir = await tempDir(t);
  const sock = join(dir, 'notify.sock');
  const receiver = spawn('python3', ['-c', `import socket,sys\ns=socket.socket(socket.AF_UNIX,socket.SOCK_DGRAM)\ns.bind(sys.argv[1])\nsys.stdout.write(s.recv(4096).decode())`, sock], { stdio: ['ignore', 'pipe', 'inherit'] });
  t.after(() => receiver.kill('SIGKILL'));
  // Attached now: the receiver can get the datagram and exit before notifySystemd's callback runs.
  const exited = once(receiver, 'exit');
  let got = '';
  receiver.stdout.on('data', (b: Buffer) => (got += b.toString()));
  await waitFor(() => existsSync(sock), 10_000, 'the receiver bound');
  assert.equal(await notifySystemd({ PATH: process.env.PATH, NOTIFY_SOCKET: sock }, { ready: true, mainPid: 4242 }), undefined);
  await exited;
  assert.deepEqual(got.split('\n').sort(), ['MAINPID=4242', 'READY=1']);
});

test('a notify that fails is returned as a message, not thrown', async () => {
  const failed = await notifySystemd({ PATH: '/nonexistent', NOTIFY_SOCKET: '/nonexistent/sock' }, { ready: true });
  assert.match(failed ?? '', /systemd-notify READY=1 failed/);
});
