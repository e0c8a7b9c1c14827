// AppLimits: the daemon's authority over one app's connection limits (issue 12 §2). It outlives
// workers and generations (one per AppSupervisor, i.e. per app name), so every listener process
// of the app — every worker, the generation rolling out and the ones draining — leases from the
// same counts and buckets, and a rollout does not reset them. The arithmetic is the pure
// LimitAuthority (proxy/protect/limit-authority.ts); this binds it to listener processes.
// Invariants: a holder is registered while its process lives and dropped (its leases freed) when it
// exits; an app with no limits never creates the authority.
import { LimitAuthority } from '../../proxy/index.ts';
import type { FromListener, LimitSettings, ListenerSpec, ToHolder, ToListener } from '../../proxy/index.ts';

type Send = (msg: ToListener) => void;

/** How often idle per-source entries are dropped. */
const SWEEP_MS = 5000;

export function limitSettings(spec: ListenerSpec): LimitSettings {
  const p = spec.perSource;
  return {
    maxConnections: spec.maxConnections,
    queueTimeoutMs: spec.queueTimeoutMs,
    perSourceMaxConnections: p?.maxConnections ?? 0,
    ratePerSecond: p?.ratePerSecond ?? 0,
    burst: p?.burst ?? 1,
    workers: spec.workers,
  };
}

export interface LimitHolder {
  readonly id: number;
  request(msg: Extract<FromListener, { type: 'lease' }>): void;
  /** A handed-over connection's leases move from this holder to `to` (same app); returns what moved. */
  transferTo(to: LimitHolder, key: string | null, app: number, slots: number): { app: number; slots: number };
  giveBack(msg: Extract<FromListener, { type: 'lease-return' }>): void;
  /** The process exited: free what it held. */
  drop(): void;
}

export class AppLimits {
  readonly app: string;
  #settings: LimitSettings | undefined;
  #authority: LimitAuthority | undefined;
  readonly #holders = new Map<number, Send>();
  #nextHolder = 1;
  #sweep: NodeJS.Timeout | undefined;

  constructor(app: string) {
    this.app = app;
  }

  /** The settings of the spec being started (a rollout changes them; leases out stay valid). */
  configure(spec: ListenerSpec): void {
    this.#settings = limitSettings(spec);
    this.#authority?.configure(this.#settings);
  }

  /** Leased app slots right now (tests, status). */
  get appLeased(): number {
    return this.#authority?.appLeased ?? 0;
  }

  attach(send: Send): LimitHolder {
    const id = this.#nextHolder++;
    this.#holders.set(id, send);
    return {
      id,
      request: ({ seq, app, key, slots, tokens }) => this.#get().request(id, { seq, app, key, slots, tokens }),
      transferTo: (to, key, app, slots) => this.#authority?.transfer(id, to.id, key, app, slots) ?? { app: 0, slots: 0 },
      giveBack: ({ app, key, slots, tokens, recall }) => this.#authority?.giveBack(id, { app, key, slots, tokens, recall }),
      drop: () => {
        this.#holders.delete(id);
        this.#authority?.dropHolder(id);
      },
    };
  }

  close(): void {
    clearInterval(this.#sweep);
    this.#authority?.close();
  }

  #get(): LimitAuthority {
    if (this.#authority !== undefined) return this.#authority;
    const settings = this.#settings ?? { maxConnections: 0, queueTimeoutMs: 0, perSourceMaxConnections: 0, ratePerSecond: 0, burst: 1, workers: 1 };
    this.#authority = new LimitAuthority(settings, { send: (holder, msg) => this.#holders.get(holder)?.(toListener(msg)) });
    this.#sweep = setInterval(() => this.#authority?.sweep(), SWEEP_MS);
    this.#sweep.unref();
    return this.#authority;
  }
}

function toListener(msg: ToHolder): ToListener {
  if (msg.kind === 'recall') return { v: 1, type: 'lease-recall', key: msg.key };
  const { seq, app, slots, tokens, keepApp, keepSlots } = msg;
  return { v: 1, type: 'lease-grant', seq, app, slots, tokens, keepApp, keepSlots };
}
