// notifySystemd: tells systemd (a Type=notify unit, packaging/fproxy.service) that the daemon is
// ready, and after a daemon upgrade which process is now the main one (MAINPID), so systemd
// follows the new daemon instead of counting the old one's exit as the service stopping.
// Node has no AF_UNIX datagram sockets, so this runs `systemd-notify` (systemd's own client);
// NotifyAccess=all in the unit lets systemd accept it from a process other than the main one.
// Outside systemd (no NOTIFY_SOCKET) it does nothing. A failure is returned, never thrown:
// the daemon runs on, and the caller logs it.
import { execFile } from 'node:child_process';

export async function notifySystemd(env: NodeJS.ProcessEnv, state: { ready?: boolean; mainPid?: number; status?: string }): Promise<string | undefined> {
  if (!env.NOTIFY_SOCKET) return undefined;
  // --no-block: no barrier (a wait for systemd to have processed it): the daemon must not stall on
  // it, and a receiver that has already read the message and gone would turn it into an error.
  const args: string[] = ['--no-block'];
  if (state.mainPid !== undefined) args.push(`MAINPID=${state.mainPid}`);
  if (state.ready) args.push('READY=1');
  if (state.status !== undefined) args.push(`STATUS=${state.status}`);
  return new Promise((resolve) => {
    execFile('systemd-notify', args, { env, timeout: 5000 }, (err, _stdout, stderr) => resolve(err ? `systemd-notify ${args.slice(1).join(' ')} failed: ${stderr.trim() || err.message}` : undefined));
  });
}
