// LimitAuthority: the single owner of one app's limits (MaxConnections, PerSource) across every
// worker and generation. Holders (listener processes) lease app slots, per-source slots and
// per-source rate tokens from it in small blocks and use them locally; it guarantees
//   Σ leased app slots ≤ maxConnections and, per source, Σ leased slots ≤ perSourceMaxConnections,
//   and rate tokens handed out ≤ burst + ratePerSecond × elapsed seconds (one bucket per source).
// When a request cannot be met and other holders hold slots of the same kind, it recalls their
// spare ones (one IPC round trip) before answering, so hoarding never refuses a connection the
// limit would allow. App-slot requests may queue up to queueTimeoutMs.
// Memory: one entry per source with leases or a non-full bucket; entries idle and full are dropped
// by sweep(); at most maxEntries are kept (least recently used idle ones go first).
// Pure apart from the injected clock and timers; talks to holders through `send`.
import { TokenBucket } from './token-bucket.ts';
import { blockSize, type LeaseRequest, type LeaseReturn, type LimitSettings, type ToHolder } from './lease-messages.ts';

interface SourceEntry {
  leased: number;
  bucket: TokenBucket | null;
  readonly byHolder: Map<number, number>;
}

interface Waiter {
  readonly holder: number;
  readonly seq: number;
  readonly key: string | null;
  needApp: number;
  needSlots: number;
  gotApp: number;
  gotSlots: number;
  readonly gotTokens: number;
  /** Queued for an app slot until this time (0: only until the recall round ends). */
  readonly until: number;
}

/** The recall round in progress for one kind of slot ('' = app slots): holders yet to answer. */
interface Round {
  readonly waiting: Set<number>;
  readonly timer: NodeJS.Timeout;
}

const APP = '';
const RECALL_WAIT_MS = 1000;

export interface LimitAuthorityOptions {
  readonly send: (holder: number, msg: ToHolder) => void;
  readonly now?: () => number;
  readonly maxEntries?: number;
}

export class LimitAuthority {
  #settings: LimitSettings;
  readonly #send: (holder: number, msg: ToHolder) => void;
  readonly #now: () => number;
  readonly #maxEntries: number;
  #appLeased = 0;
  readonly #appByHolder = new Map<number, number>();
  /** Per source, in least-recently-used order (a use moves an entry to the end). */
  readonly #sources = new Map<string, SourceEntry>();
  readonly #waiters: Waiter[] = [];
  readonly #rounds = new Map<string, Round>();
  #queueTimer: NodeJS.Timeout | undefined;

  constructor(settings: LimitSettings, options: LimitAuthorityOptions) {
    this.#settings = settings;
    this.#send = options.send;
    this.#now = options.now ?? Date.now;
    this.#maxEntries = options.maxEntries ?? 100_000;
  }

  /** New settings (a rollout): leases already out stay valid; buckets keep their level. */
  configure(settings: LimitSettings): void {
    const old = this.#settings;
    this.#settings = settings;
    if (old.ratePerSecond !== settings.ratePerSecond || old.burst !== settings.burst) {
      for (const e of this.#sources.values()) {
        if (e.bucket === null || settings.ratePerSecond <= 0) e.bucket = null;
        else e.bucket = new TokenBucket(settings.ratePerSecond, settings.burst, this.#now);
      }
    }
    this.#serveWaiters();
  }

  get appLeased(): number {
    return this.#appLeased;
  }

  get sources(): number {
    return this.#sources.size;
  }

  request(holder: number, req: LeaseRequest): void {
    const s = this.#settings;
    let gotApp = 0;
    if (req.app > 0 && s.maxConnections > 0) gotApp = this.#takeApp(holder, req.app);
    else if (req.app > 0) gotApp = req.app;
    let gotSlots = 0;
    let gotTokens = 0;
    if (req.key !== null) {
      const e = this.#entry(req.key);
      if (req.slots > 0) gotSlots = s.perSourceMaxConnections > 0 ? this.#takeSlots(holder, e, req.slots) : req.slots;
      if (req.tokens > 0) gotTokens = e.bucket === null ? req.tokens : e.bucket.take(req.tokens);
    }
    const needApp = req.app > 0 && gotApp === 0 ? 1 : 0;
    const needSlots = req.slots > 0 && gotSlots === 0 ? 1 : 0;
    const recallApp = needApp > 0 && this.#recall(APP, holder);
    const recallSlots = needSlots > 0 && req.key !== null && this.#recall(req.key, holder);
    const queue = needApp > 0 && s.queueTimeoutMs > 0;
    if (recallApp || recallSlots || queue) {
      this.#waiters.push({ holder, seq: req.seq, key: req.key, needApp, needSlots, gotApp, gotSlots, gotTokens, until: queue ? this.#now() + s.queueTimeoutMs : 0 });
      if (queue) this.#armQueueTimer();
      return;
    }
    this.#grant(holder, req.seq, req.key, gotApp, gotSlots, gotTokens);
  }

  giveBack(holder: number, ret: LeaseReturn): void {
    if (ret.app > 0) {
      const held = this.#appByHolder.get(holder) ?? 0;
      const n = Math.min(ret.app, held);
      this.#setHolderApp(holder, held - n);
      this.#appLeased -= n;
    }
    if (ret.key !== null) {
      const e = this.#sources.get(ret.key);
      if (e !== undefined) {
        if (ret.slots > 0) {
          const held = e.byHolder.get(holder) ?? 0;
          const n = Math.min(ret.slots, held);
          if (held - n > 0) e.byHolder.set(holder, held - n);
          else e.byHolder.delete(holder);
          e.leased -= n;
        }
        if (ret.tokens > 0 && e.bucket !== null) e.bucket.give(ret.tokens);
      }
    }
    if (ret.recall) this.#answered(ret.key === null ? APP : ret.key, holder);
    this.#serveWaiters();
  }

  /**
   * A connection moved from holder `from` to holder `to` (issue 16 handover): the leases it used
   * (an app slot, a slot of source `key`) move with it, so the totals never dip while it moves.
   * Moves at most what `from` holds; returns what moved.
   */
  transfer(from: number, to: number, key: string | null, app: number, slots: number): { app: number; slots: number } {
    let movedApp = 0;
    let movedSlots = 0;
    if (app > 0) {
      const held = this.#appByHolder.get(from) ?? 0;
      movedApp = Math.min(app, held);
      if (movedApp > 0) {
        this.#setHolderApp(from, held - movedApp);
        this.#setHolderApp(to, (this.#appByHolder.get(to) ?? 0) + movedApp);
      }
    }
    const e = key === null ? undefined : this.#sources.get(key);
    if (slots > 0 && e !== undefined) {
      const held = e.byHolder.get(from) ?? 0;
      movedSlots = Math.min(slots, held);
      if (movedSlots > 0) {
        if (held - movedSlots > 0) e.byHolder.set(from, held - movedSlots);
        else e.byHolder.delete(from);
        e.byHolder.set(to, (e.byHolder.get(to) ?? 0) + movedSlots);
      }
    }
    return { app: movedApp, slots: movedSlots };
  }

  /** A holder is gone (its process exited): everything it held is free again. */
  dropHolder(holder: number): void {
    this.#appLeased -= this.#appByHolder.get(holder) ?? 0;
    this.#appByHolder.delete(holder);
    for (const e of this.#sources.values()) {
      const n = e.byHolder.get(holder);
      if (n !== undefined) {
        e.leased -= n;
        e.byHolder.delete(holder);
      }
    }
    for (const key of [...this.#rounds.keys()]) this.#answered(key, holder);
    for (let i = this.#waiters.length - 1; i >= 0; i--) if (this.#waiters[i]!.holder === holder) this.#waiters.splice(i, 1);
    this.#serveWaiters();
  }

  /** Drop source entries that hold nothing and whose bucket is full again (call every few seconds). */
  sweep(): void {
    for (const [key, e] of this.#sources) if (e.leased === 0 && (e.bucket === null || e.bucket.full)) this.#sources.delete(key);
  }

  close(): void {
    clearTimeout(this.#queueTimer);
    for (const r of this.#rounds.values()) clearTimeout(r.timer);
    this.#rounds.clear();
  }

  #takeApp(holder: number, want: number): number {
    const n = Math.min(want, this.#settings.maxConnections - this.#appLeased);
    if (n <= 0) return 0;
    this.#appLeased += n;
    this.#setHolderApp(holder, (this.#appByHolder.get(holder) ?? 0) + n);
    return n;
  }

  #setHolderApp(holder: number, n: number): void {
    if (n > 0) this.#appByHolder.set(holder, n);
    else this.#appByHolder.delete(holder);
  }

  #takeSlots(holder: number, e: SourceEntry, want: number): number {
    const n = Math.min(want, this.#settings.perSourceMaxConnections - e.leased);
    if (n <= 0) return 0;
    e.leased += n;
    e.byHolder.set(holder, (e.byHolder.get(holder) ?? 0) + n);
    return n;
  }

  #entry(key: string): SourceEntry {
    let e = this.#sources.get(key);
    if (e !== undefined) {
      // Most recently used goes last, so eviction finds the oldest first.
      this.#sources.delete(key);
      this.#sources.set(key, e);
      return e;
    }
    const s = this.#settings;
    e = { leased: 0, bucket: s.ratePerSecond > 0 ? new TokenBucket(s.ratePerSecond, s.burst, this.#now) : null, byHolder: new Map() };
    if (this.#sources.size >= this.#maxEntries) {
      // Evict the least recently used entry that holds no slots (forgetting a bucket is lenient, never strict).
      for (const [k, old] of this.#sources) {
        if (old.leased === 0) {
          this.#sources.delete(k);
          break;
        }
      }
    }
    this.#sources.set(key, e);
    return e;
  }

  /** Starts (or joins) a recall round for `kind` unless nobody else holds any; returns whether to wait for it. */
  #recall(kind: string, requester: number): boolean {
    const existing = this.#rounds.get(kind);
    if (existing !== undefined) return true;
    const holders: number[] = [];
    if (kind === APP) {
      for (const [h, n] of this.#appByHolder) if (n > 0) holders.push(h);
    } else {
      const e = this.#sources.get(kind);
      if (e !== undefined) for (const [h, n] of e.byHolder) if (n > 0) holders.push(h);
    }
    // The requester asked because it has no spare; others may have. Nobody holds any: nothing to recall.
    if (holders.length === 0 || (holders.length === 1 && holders[0] === requester)) return false;
    const waiting = new Set(holders);
    const timer = setTimeout(() => {
      this.#rounds.delete(kind);
      this.#serveWaiters();
    }, RECALL_WAIT_MS);
    timer.unref();
    this.#rounds.set(kind, { waiting, timer });
    for (const h of holders) this.#send(h, { kind: 'recall', key: kind === APP ? null : kind });
    return true;
  }

  #answered(kind: string, holder: number): void {
    const r = this.#rounds.get(kind);
    if (r === undefined || !r.waiting.delete(holder) || r.waiting.size > 0) return;
    clearTimeout(r.timer);
    this.#rounds.delete(kind);
    this.#serveWaiters();
  }

  /** Serve waiters in order; one whose recall round has ended and is not queued gets its answer now. */
  #serveWaiters(): void {
    const now = this.#now();
    for (let i = 0; i < this.#waiters.length; ) {
      const w = this.#waiters[i]!;
      if (w.needApp > 0 && w.gotApp === 0) w.gotApp = this.#takeApp(w.holder, 1);
      if (w.needSlots > 0 && w.gotSlots === 0 && w.key !== null) w.gotSlots = this.#takeSlots(w.holder, this.#entry(w.key), 1);
      const appDone = w.needApp === 0 || w.gotApp > 0 || (w.until === 0 ? !this.#rounds.has(APP) : now >= w.until);
      const slotsDone = w.needSlots === 0 || w.gotSlots > 0 || w.key === null || !this.#rounds.has(w.key);
      if (appDone && slotsDone) {
        this.#waiters.splice(i, 1);
        this.#grant(w.holder, w.seq, w.key, w.gotApp, w.gotSlots, w.gotTokens);
      } else {
        i++;
      }
    }
    if (this.#waiters.some((w) => w.until > 0)) this.#armQueueTimer();
  }

  #armQueueTimer(): void {
    clearTimeout(this.#queueTimer);
    let next = Infinity;
    for (const w of this.#waiters) if (w.until > 0 && w.until < next) next = w.until;
    if (next === Infinity) return;
    this.#queueTimer = setTimeout(() => this.#serveWaiters(), Math.max(0, next - this.#now()));
    this.#queueTimer.unref();
  }

  #grant(holder: number, seq: number, key: string | null, app: number, slots: number, tokens: number): void {
    const s = this.#settings;
    const holders = Math.max(1, this.#appByHolder.size);
    let keepApp = 0;
    if (s.maxConnections > 0) {
      const b = blockSize(s.maxConnections, s.workers);
      // Holders keep a spare block only while the rest of the limit could still give everyone one.
      keepApp = s.maxConnections - this.#appLeased >= b * holders ? b : 0;
    }
    let keepSlots = 0;
    if (key !== null && s.perSourceMaxConnections > 0) {
      const e = this.#sources.get(key);
      const b = blockSize(s.perSourceMaxConnections, s.workers);
      keepSlots = e !== undefined && s.perSourceMaxConnections - e.leased >= b * Math.max(1, e.byHolder.size) ? b : 0;
    }
    this.#send(holder, { kind: 'grant', seq, app, slots, tokens, keepApp, keepSlots });
  }
}
