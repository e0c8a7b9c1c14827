// Lease messages between a listener (the holder) and the limit authority (the daemon, or an
// in-process one for `fproxy listen`). Plain JSON: they cross IPC as is (proxy/ipc/protocol.ts
// wraps them with `v` and `type`).

/** Holder → authority: "I need these". `key` is the source key (null: no per-source part). */
export interface LeaseRequest {
  readonly seq: number;
  /** App-wide connection slots wanted (0 = none needed). */
  readonly app: number;
  readonly key: string | null;
  /** Per-source connection slots wanted for `key`. */
  readonly slots: number;
  /** Per-source rate tokens wanted for `key`. */
  readonly tokens: number;
}

/** Authority → holder: what it got (each ≤ what was asked; 0 = refused), and how many spare slots it may keep. */
export interface LeaseGrant {
  readonly seq: number;
  readonly app: number;
  readonly slots: number;
  readonly tokens: number;
  /** Spare app slots the holder may keep when connections close; more goes back at once. */
  readonly keepApp: number;
  /** Spare slots for `key` the holder may keep. */
  readonly keepSlots: number;
}

/** Holder → authority: slots (and unused tokens) given back. `recall`: the answer to a LeaseRecall. */
export interface LeaseReturn {
  readonly app: number;
  readonly key: string | null;
  readonly slots: number;
  readonly tokens: number;
  readonly recall: boolean;
}

/** Authority → holder: give back every spare slot of `key` (null: app slots) and keep none. */
export interface LeaseRecall {
  readonly key: string | null;
}

export type ToHolder = ({ readonly kind: 'grant' } & LeaseGrant) | ({ readonly kind: 'recall' } & LeaseRecall);

/** The limits one app's authority enforces (from the spec). 0 = no limit. */
export interface LimitSettings {
  readonly maxConnections: number;
  readonly queueTimeoutMs: number;
  readonly perSourceMaxConnections: number;
  readonly ratePerSecond: number;
  readonly burst: number;
  readonly workers: number;
}

/** Slots or tokens a holder asks for at once: small enough that holders hoard little of the limit. */
export function blockSize(limit: number, workers: number): number {
  return Math.max(1, Math.floor(limit / (8 * Math.max(1, workers))));
}
