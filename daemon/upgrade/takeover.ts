// Takeover: the new daemon's half of a daemon upgrade (upgrade-protocol.ts), over the IPC channel
// to the old daemon that spawned it. Only a process started with FPROXY_UPGRADE_FROM and an IPC
// channel is a successor; any other start is a normal one.
// Order: receive `carry` → (the daemon starts every app) → ready() sends `ready` and waits for the
// admin socket → tookOver() → the old daemon's final totals arrive through onMetrics.
// The channel is unref'd: the old daemon's exit (or its IPC going away) never stops this one.
import type { Server as NetServer } from 'node:net';
import type net from 'node:net';
import type { HandoverSession, MetricsSnapshot } from '../../proxy/index.ts';
import { DaemonError } from '../daemon-error.ts';
import { parseToSuccessor, UPGRADE_FROM_ENV, UPGRADE_VERSION } from './upgrade-protocol.ts';
import type { DaemonCounters, FromSuccessor, UpgradeCarry } from './upgrade-protocol.ts';

const CARRY_TIMEOUT_MS = 10_000;

export class Takeover {
  readonly carry: UpgradeCarry;
  /** Resolves once the predecessor has sent its final totals or gone: only then may this daemon upgrade in turn (its totals must include them). */
  readonly settled: Promise<void>;
  #settle!: () => void;
  #onMetrics: ((totals: readonly MetricsSnapshot[]) => void) | undefined;

  private constructor(carry: UpgradeCarry) {
    this.carry = carry;
    this.settled = new Promise((resolve) => (this.#settle = resolve));
  }

  /** In a successor: wait for the predecessor's `carry`. Undefined in a normal start. */
  static async fromParent(env: NodeJS.ProcessEnv = process.env): Promise<Takeover | undefined> {
    const from = env[UPGRADE_FROM_ENV];
    if (from === undefined || from === '' || process.send === undefined) return undefined;
    // Our listeners get our environment: they are no successors.
    delete env[UPGRADE_FROM_ENV];
    const msg = await receive((m) => m.type === 'carry', CARRY_TIMEOUT_MS, 'carry');
    return new Takeover((msg.msg as { carry: UpgradeCarry }).carry);
  }

  /** Every app serves: say so and wait for the admin socket and the predecessor's totals. */
  async ready(timeoutMs: number): Promise<{ admin: NetServer | undefined; metrics: readonly MetricsSnapshot[]; daemon: DaemonCounters | undefined }> {
    const got = receive((m) => m.type === 'admin', timeoutMs, 'admin');
    reply({ v: UPGRADE_VERSION, type: 'ready', pid: process.pid });
    const { msg, handle } = await got;
    const admin = msg as { metrics: readonly MetricsSnapshot[]; daemon?: DaemonCounters };
    return { admin: handle as NetServer | undefined, metrics: admin.metrics, daemon: admin.daemon };
  }

  /**
   * We answer on the admin socket now; later totals from the predecessor go to onMetrics, and the
   * connections its draining listeners hand over to onAdopt (false: nobody took it, it is closed).
   */
  tookOver(onMetrics: (totals: readonly MetricsSnapshot[]) => void, onAdopt: (app: string, part: AdoptedPart) => boolean): void {
    this.#onMetrics = onMetrics;
    process.on('message', (raw, handle) => {
      // Node made a socket of the handle and started reading it: stop in this tick (see ListenerProcess).
      (handle as { _handle?: { readStop?: () => void } } | undefined)?._handle?.readStop?.();
      const msg = parseToSuccessor(raw);
      if (msg?.type === 'metrics') {
        this.#onMetrics?.(msg.metrics);
        this.#settle();
      } else if (msg?.type === 'adopt' && handle !== undefined) {
        const socket = handle as net.Socket;
        if (!onAdopt(msg.app, { from: msg.from, id: msg.id, part: msg.part, session: msg.session, socket })) socket.destroy();
      } else if (handle !== undefined) (handle as net.Socket).destroy?.();
    });
    process.on('disconnect', () => this.#settle());
    reply({ v: UPGRADE_VERSION, type: 'took-over', pid: process.pid });
    process.channel?.unref();
  }

  /** Tell the predecessor we give up (it keeps serving). */
  failed(err: unknown): Promise<void> {
    const e = err as { code?: string; message?: string };
    return new Promise((resolve) => {
      if (!process.connected) return resolve();
      process.send!({ v: UPGRADE_VERSION, type: 'failed', error: { code: e.code ?? 'ERR_INTERNAL', message: e.message ?? String(err) } } satisfies FromSuccessor, undefined, {}, () => resolve());
    });
  }
}

/** Same shape as a listener's HandoverPart (daemon/listener-process.ts). */
export interface AdoptedPart {
  readonly from: number;
  readonly id: number;
  readonly part: 'client' | 'upstream';
  readonly session: HandoverSession;
  readonly socket: net.Socket;
}

function reply(msg: FromSuccessor): void {
  if (!process.connected) throw new DaemonError('ERR_UPGRADE_ABANDONED', 'The old daemon went away during the upgrade');
  process.send!(msg);
}

function receive(match: (m: { type: string }) => boolean, timeoutMs: number, what: string): Promise<{ msg: unknown; handle: unknown }> {
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => done(new DaemonError('ERR_UPGRADE_TIMEOUT', `No "${what}" message from the old daemon within ${timeoutMs} ms`)), timeoutMs);
    const onMessage = (raw: unknown, handle: unknown): void => {
      const msg = parseToSuccessor(raw);
      if (msg === undefined) return done(new DaemonError('ERR_UPGRADE_PROTOCOL', `The old daemon sent a message this daemon does not understand: ${JSON.stringify(raw).slice(0, 200)}`));
      if (match(msg)) done(undefined, { msg, handle });
    };
    const onDisconnect = (): void => done(new DaemonError('ERR_UPGRADE_ABANDONED', `The old daemon went away while this one waited for "${what}"`));
    process.on('message', onMessage);
    process.once('disconnect', onDisconnect);
    function done(err: Error | undefined, value?: { msg: unknown; handle: unknown }): void {
      clearTimeout(timer);
      process.off('message', onMessage);
      process.off('disconnect', onDisconnect);
      if (err) reject(err);
      else resolve(value!);
    }
  });
}
