// startSuccessor: the old daemon's half of a daemon upgrade (upgrade-protocol.ts). It spawns a new
// daemon from the code on disk — same node, same entry script and arguments, same environment and
// working directory (so the same config source and admin address) — detached in a session of its
// own so it outlives us, and walks it through the hand-over:
//   carry → (new starts every app alongside ours) ready → admin socket + totals → took-over.
// Only after took-over does the caller drain its own listeners; until then nothing of ours changed.
// Any failure (a `failed` message, an exit, an unknown message, the deadline) rejects with a
// DaemonError naming the reason; a successor still alive then is sent SIGTERM (it drains whatever
// it started: its listeners may already hold connections, so they are not killed).
import { spawn } from 'node:child_process';
import type { ChildProcess } from 'node:child_process';
import type { Server as NetServer } from 'node:net';
import type { MetricsSnapshot } from '../../proxy/index.ts';
import { DaemonError } from '../daemon-error.ts';
import type { Logger } from '../logger.ts';
import type { HandoverPart } from '../listener-process.ts';
import { parseFromSuccessor, UPGRADE_FROM_ENV, UPGRADE_VERSION } from './upgrade-protocol.ts';
import type { DaemonCounters, FromSuccessor, ToSuccessor, UpgradeCarry } from './upgrade-protocol.ts';

export interface SuccessorOptions {
  readonly logger: Logger;
  readonly env: NodeJS.ProcessEnv;
  readonly carry: UpgradeCarry;
  /** The admin socket to hand over (undefined: the successor binds nothing for admin). */
  readonly admin: () => NetServer | undefined;
  /** Our metrics totals at hand-over time. */
  readonly totals: () => Promise<MetricsSnapshot[]>;
  /** Our own counters at hand-over time (reloads, rollouts, restarts): they go on in the new daemon. */
  readonly counters?: () => Promise<DaemonCounters>;
  /** From spawn to took-over. */
  readonly timeoutMs: number;
  /** What to run; default this process's node, flags, script and arguments. */
  readonly command?: { readonly file: string; readonly args: readonly string[] };
}

export interface Successor {
  readonly pid: number;
  /** Pass a connection one of our draining listeners handed over to the new daemon; false if it is gone. */
  relay(app: string, part: HandoverPart): boolean;
  /** Send our final totals (after our listeners exited) and let go of the IPC channel. */
  finish(totals: readonly MetricsSnapshot[]): Promise<void>;
}

export async function startSuccessor(options: SuccessorOptions): Promise<Successor> {
  const { file, args } = options.command ?? { file: process.execPath, args: [...process.execArgv, ...process.argv.slice(1)] };
  const child = spawn(file, args, {
    detached: true,
    stdio: ['ignore', 'inherit', 'inherit', 'ipc'],
    serialization: 'json',
    env: { ...options.env, [UPGRADE_FROM_ENV]: String(process.pid) },
  });
  const log = options.logger.child({ successorPid: child.pid });
  const inbox = new Inbox(child);
  const deadline = Date.now() + options.timeoutMs;
  try {
    await new Promise<void>((resolve, reject) => {
      child.once('spawn', resolve);
      child.once('error', reject);
    });
    log.info({ event: 'upgrade-spawned' }, 'new daemon spawned from the code on disk; waiting for its apps');
    send(child, { v: UPGRADE_VERSION, type: 'carry', carry: options.carry });
    await inbox.next('ready', deadline);
    log.info({ event: 'upgrade-successor-ready' }, 'new daemon serves every app; handing over the admin endpoint');
    const totals = await options.totals();
    const daemon = await options.counters?.();
    send(child, { v: UPGRADE_VERSION, type: 'admin', metrics: totals, ...(daemon === undefined ? {} : { daemon }) }, options.admin());
    await inbox.next('took-over', deadline);
  } catch (err) {
    inbox.close();
    if (child.exitCode === null && child.signalCode === null) child.kill('SIGTERM');
    const cause = err as Error & { code?: string };
    if (cause instanceof DaemonError) throw cause;
    throw new DaemonError('ERR_UPGRADE_SPAWN', `Cannot start a new daemon (${file} ${args.join(' ')}): ${cause.message}`, { cause });
  }
  inbox.close();
  return {
    pid: child.pid!,
    relay(app, part) {
      if (!child.connected) return false;
      const msg: ToSuccessor = { v: UPGRADE_VERSION, type: 'adopt', app, from: part.from, id: part.id, part: part.part, session: part.session };
      child.send(msg, part.socket, {}, (err) => {
        if (err) part.socket.destroy();
      });
      return true;
    },
    async finish(final) {
      await new Promise<void>((resolve) => {
        if (!child.connected) return resolve();
        child.send({ v: UPGRADE_VERSION, type: 'metrics', metrics: final } satisfies ToSuccessor, () => resolve());
      });
      if (child.connected) child.disconnect();
      child.unref();
    },
  };
}

function send(child: ChildProcess, msg: ToSuccessor, handle?: NetServer): void {
  if (!child.connected) throw new DaemonError('ERR_UPGRADE_EXITED', `The new daemon (pid ${child.pid}) closed its IPC channel`);
  if (handle === undefined) child.send(msg);
  else child.send(msg, handle);
}

/** The successor's messages, one awaited at a time; an exit, a `failed` or an unknown message fails the wait. */
class Inbox {
  readonly #child: ChildProcess;
  #waiter: ((msg: FromSuccessor | Error) => void) | undefined;
  #failure: Error | undefined;
  readonly #queue: FromSuccessor[] = [];
  readonly #onMessage = (raw: unknown): void => {
    const msg = parseFromSuccessor(raw);
    if (msg === undefined) return this.#fail(new DaemonError('ERR_UPGRADE_PROTOCOL', `The new daemon (pid ${this.#child.pid}) sent a message this daemon does not understand: ${JSON.stringify(raw).slice(0, 200)}`));
    if (msg.type === 'failed') return this.#fail(new DaemonError('ERR_UPGRADE_FAILED', `The new daemon (pid ${this.#child.pid}) failed to start: ${msg.error.message} (${msg.error.code})`));
    this.#queue.push(msg);
    this.#wake();
  };
  readonly #onExit = (code: number | null, signal: NodeJS.Signals | null): void => {
    this.#fail(new DaemonError('ERR_UPGRADE_EXITED', `The new daemon (pid ${this.#child.pid}) exited before taking over (code ${code}, signal ${signal}); see its log lines above`));
  };

  constructor(child: ChildProcess) {
    this.#child = child;
    child.on('message', this.#onMessage);
    child.on('exit', this.#onExit);
  }

  async next(type: 'ready' | 'took-over', deadline: number): Promise<void> {
    const msg = await new Promise<FromSuccessor | Error>((resolve) => {
      const timer = setTimeout(() => resolve(new DaemonError('ERR_UPGRADE_TIMEOUT', `The new daemon (pid ${this.#child.pid}) did not report "${type}" in time`)), Math.max(0, deadline - Date.now()));
      this.#waiter = (m) => {
        clearTimeout(timer);
        this.#waiter = undefined;
        resolve(m);
      };
      this.#wake();
    });
    if (msg instanceof Error) throw msg;
    if (msg.type !== type) throw new DaemonError('ERR_UPGRADE_PROTOCOL', `The new daemon (pid ${this.#child.pid}) sent "${msg.type}" where "${type}" was expected`);
  }

  close(): void {
    this.#child.off('message', this.#onMessage);
    this.#child.off('exit', this.#onExit);
  }

  #fail(err: Error): void {
    this.#failure ??= err;
    this.#wake();
  }

  #wake(): void {
    if (this.#waiter === undefined) return;
    if (this.#failure !== undefined) return this.#waiter(this.#failure);
    const msg = this.#queue.shift();
    if (msg !== undefined) this.#waiter(msg);
  }
}
