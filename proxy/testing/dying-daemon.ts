// Test support: a stand-in daemon that forks one listener (proxy/main.ts), starts it on `spec`
// (argv[2], JSON), prints {"listenerPid", "port"} on stdout when it is ready, and on a line
// "drain" on stdin asks it to drain handing connections over — then SIGKILLs itself at the first
// `handover` message, as a daemon killed mid-handover would. Used by proxy/main.test.ts.
import { fork } from 'node:child_process';

const spec: unknown = JSON.parse(process.argv[2]!);
const listener = fork(new URL('../main.ts', import.meta.url), [], {
  execArgv: [],
  env: { PATH: process.env.PATH, LOG_LEVEL: process.env.DYING_LOG ?? 'silent', FPROXY_ENGINE: 'js' },
  stdio: ['ignore', process.env.DYING_LOG ? 2 : 'ignore', 'inherit', 'ipc'],
});
listener.on('message', (m: { type?: string; ports?: number[] }) => {
  if (m.type === 'ready') process.stdout.write(`${JSON.stringify({ listenerPid: listener.pid, port: m.ports?.[0] })}\n`);
  if (m.type === 'handover') process.kill(process.pid, 'SIGKILL');
});
listener.send({ v: 1, type: 'start', spec, generation: 1, worker: 0 });
process.stdin.setEncoding('utf8');
process.stdin.on('data', (line: string) => {
  if (line.trim() === 'drain') listener.send({ v: 1, type: 'drain', handOver: true });
});
