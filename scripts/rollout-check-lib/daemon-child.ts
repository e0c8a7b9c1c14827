// The daemon under check, as a child process: its NDJSON log kept (last 200 lines) and optionally
// echoed, its admin address read from the structured `admin-listening` line (never from wording),
// and its /apps. Stopping sends SIGTERM and reports a slow or unclean exit.
import { spawn } from 'node:child_process';
import type { ChildProcess } from 'node:child_process';
import { once } from 'node:events';
import { createInterface } from 'node:readline';
import type { AppStatus } from '../../daemon/app-supervisor.ts';

const DAEMON_MAIN = new URL('../../daemon/main.ts', import.meta.url).pathname;

export interface DaemonChild {
  readonly child: ChildProcess;
  readonly tail: string[];
  /** The admin port, 0 until the daemon has logged it. */
  adminPort(): number;
  apps(): Promise<AppStatus[]>;
  /** The serving (not draining) entry of app `name`. */
  app(name: string): Promise<AppStatus | undefined>;
  /** SIGTERM, then SIGKILL after 20 s; resolves with a problem to report, if any. */
  stop(): Promise<string | undefined>;
}

export function startDaemon(configPath: string, env: Record<string, string>, verbose: boolean): DaemonChild {
  const child = spawn(process.execPath, [DAEMON_MAIN], {
    stdio: ['ignore', 'pipe', 'pipe'],
    env: { PATH: process.env.PATH ?? '/usr/bin:/bin', FPROXY_CONFIG_PATH: configPath, FPROXY_ADMIN_ADDR: '127.0.0.1:0', LOG_LEVEL: 'info', ...env },
  });
  const exited = once(child, 'exit') as Promise<[number | null, NodeJS.Signals | null]>;
  // Keep the last lines for the report; the pipe is always drained so nothing blocks on it.
  const tail: string[] = [];
  let adminPort = 0;
  createInterface({ input: child.stdout! }).on('line', (line) => {
    tail.push(line);
    if (tail.length > 200) tail.shift();
    if (verbose) process.stderr.write(line + '\n');
    if (adminPort !== 0) return;
    try {
      const rec = JSON.parse(line) as { event?: unknown; address?: unknown };
      if (rec.event === 'admin-listening') adminPort = Number(String(rec.address).split(':').pop());
    } catch {
      // Not a log line (a crash trace): it stays in the tail.
    }
  });
  child.stderr!.on('data', (c: Buffer) => process.stderr.write(c));
  const apps = async (): Promise<AppStatus[]> => (await (await fetch(`http://127.0.0.1:${adminPort}/apps`)).json()) as AppStatus[];
  return {
    child,
    tail,
    adminPort: () => adminPort,
    apps,
    app: async (name) => (await apps()).find((a) => a.name === name && a.state !== 'draining'),
    stop: async () => {
      if (child.exitCode === null) child.kill('SIGTERM');
      let timer: NodeJS.Timeout | undefined;
      const exit = await Promise.race([exited, new Promise<undefined>((r) => (timer = setTimeout(() => r(undefined), 20_000)))]);
      clearTimeout(timer);
      if (exit === undefined) {
        child.kill('SIGKILL');
        return 'the daemon did not exit within 20 s of SIGTERM';
      }
      return exit[0] !== 0 ? `the daemon exited with code ${exit[0]} signal ${exit[1]}` : undefined;
    },
  };
}
