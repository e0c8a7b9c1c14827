// forkListener: the one way the daemon forks a listener process, which then waits for `start`
// (proxy/ipc/protocol.ts). Used by the spare pool and, when no spare is left, by a rollout directly.
import { fork } from 'node:child_process';
import type { ChildProcess } from 'node:child_process';
import { prettyChildOutput, wantsPretty } from './log-output.ts';

/**
 * Fork a listener child that waits for `start`.
 * Detached (own process group): a terminal's SIGHUP/SIGINT or a group kill reaches the daemon
 * only, which then drains its listeners in order; a listener still exits when the daemon dies,
 * through the IPC disconnect.
 */
export function forkListener(entry: URL, env: NodeJS.ProcessEnv = process.env): ChildProcess {
  const pretty = wantsPretty(env);
  const child = fork(entry, [], { execArgv: [], serialization: 'json', env, stdio: ['ignore', pretty ? 'pipe' : 'inherit', 'inherit', 'ipc'], detached: true });
  if (pretty && child.stdout) prettyChildOutput(child.stdout);
  return child;
}

