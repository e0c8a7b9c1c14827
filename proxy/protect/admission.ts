// Admission: the listener's side of the app's protection rules, checked once per connection on the
// real client address: ACL (Allow/Deny) → app MaxConnections → PerSource MaxConnections and rate.
// Limits are leased from the app's LimitAuthority (the daemon) in blocks and spent locally, so most
// connections need no IPC; a connection that finds no spare lease waits (paused, nothing read or
// connected) for one round trip. Spare leases above what the authority lets us keep go back when
// connections close, and all of them when the authority recalls them.
// Invariants: a ticket holds at most one app slot and one source slot, released exactly once;
// Admission is only built when the spec configures something (an app without rules pays nothing).
import type { ListenerSpec } from '../spec.ts';
import { CidrList } from './cidr-list.ts';
import { blockSize, type LeaseGrant, type LeaseRequest, type LeaseReturn } from './lease-messages.ts';
import { sourceKey } from './source-key.ts';

export type Refusal = 'denied' | 'over-limit' | 'rate-limited' | 'queue-timeout';

const HOLDS_APP = 1;
const HOLDS_SLOT = 2;

/** One connection's claim. Created per connection only for apps with limits. */
export interface Ticket {
  readonly address: string;
  key: string | null;
  holds: number;
  closed: boolean;
  /** Called once when a waiting ticket is decided (null = admitted). */
  readonly decided: (t: Ticket, refusal: Refusal | null) => void;
}

interface Local {
  leased: number;
  used: number;
  keep: number;
  tokens: number;
  lastUsed: number;
}

interface Pending {
  readonly request: LeaseRequest;
  readonly waiters: Ticket[];
}

export interface AdmissionTransport {
  request(req: LeaseRequest): void;
  giveBack(ret: LeaseReturn): void;
}

/** How long a source's local lease outlives its last connection before it goes back. */
const IDLE_MS = 5000;

export class Admission {
  readonly #acl: CidrList | null;
  readonly #maxConnections: number;
  readonly #queue: boolean;
  readonly #perSource: boolean;
  readonly #perSourceMax: number;
  readonly #rate: number;
  readonly #prefix6: number;
  readonly #appBlock: number;
  readonly #slotBlock: number;
  readonly #tokenBlock: number;
  readonly #send: AdmissionTransport;
  readonly #app: Local = { leased: 0, used: 0, keep: 0, tokens: 0, lastUsed: 0 };
  readonly #sources = new Map<string, Local>();
  readonly #pending = new Map<number, Pending>();
  /** Outstanding request per key ('' = app-only), so a burst from one source asks once. */
  readonly #pendingByKey = new Map<string, number>();
  #seq = 0;

  /** null when the spec sets no ACL and no limit: the listener then skips admission entirely. */
  static forSpec(spec: ListenerSpec, send: AdmissionTransport): Admission | null {
    const p = spec.perSource;
    const hasAcl = spec.allow !== null || spec.deny.length > 0;
    const hasLimits = spec.maxConnections > 0 || (p !== null && (p.maxConnections > 0 || p.ratePerSecond > 0));
    return hasAcl || hasLimits ? new Admission(spec, send) : null;
  }

  constructor(spec: ListenerSpec, send: AdmissionTransport) {
    this.#acl = spec.allow !== null || spec.deny.length > 0 ? new CidrList(spec.allow, spec.deny) : null;
    this.#maxConnections = spec.maxConnections;
    this.#queue = spec.queueTimeoutMs > 0;
    const p = spec.perSource;
    this.#perSourceMax = p?.maxConnections ?? 0;
    this.#rate = p?.ratePerSecond ?? 0;
    this.#perSource = this.#perSourceMax > 0 || this.#rate > 0;
    this.#prefix6 = p?.prefix6 ?? 64;
    this.#appBlock = blockSize(spec.maxConnections, spec.workers);
    this.#slotBlock = blockSize(this.#perSourceMax, spec.workers);
    this.#tokenBlock = blockSize(p?.burst ?? 0, spec.workers);
    this.#send = send;
  }

  /** Only the limits part needs the authority: an ACL-only app never sends a lease message. */
  get leases(): boolean {
    return this.#maxConnections > 0 || this.#perSource;
  }

  /**
   * Decide now when possible: a Refusal, null (admitted), or 'wait' (ticket.decided is called later).
   */
  check(t: Ticket): Refusal | null | 'wait' {
    if (this.#acl !== null && this.#acl.verdict(t.address) === 'deny') return 'denied';
    if (!this.leases) return null;
    if (this.#perSource) t.key = sourceKey(t.address, this.#prefix6);
    return this.#attempt(t, null);
  }

  /** `after`: the authority's answer and what was asked, when this is a retry after a grant. */
  #attempt(t: Ticket, after: { grant: LeaseGrant; asked: LeaseRequest } | null): Refusal | null | 'wait' {
    const app = this.#app;
    const needApp = this.#maxConnections > 0 && app.leased - app.used <= 0;
    const e = t.key === null ? undefined : this.#sources.get(t.key);
    const needSlot = this.#perSourceMax > 0 && (e === undefined || e.leased - e.used <= 0);
    const needToken = this.#rate > 0 && (e === undefined || e.tokens <= 0);
    if (!needApp && !needSlot && !needToken) {
      if (this.#maxConnections > 0) {
        app.used++;
        t.holds |= HOLDS_APP;
      }
      if (e !== undefined) {
        if (this.#perSourceMax > 0) {
          e.used++;
          t.holds |= HOLDS_SLOT;
        }
        if (this.#rate > 0) e.tokens--;
        e.lastUsed = Date.now();
      }
      return null;
    }
    if (after !== null) {
      // The authority refused what was asked: refuse for the first thing missing. (Something that
      // was not asked, or was given and already spent by earlier waiters, is asked for again.)
      const { grant: g, asked } = after;
      if (needApp && asked.app > 0 && g.app === 0) return this.#queue ? 'queue-timeout' : 'over-limit';
      if (needSlot && asked.slots > 0 && g.slots === 0) return 'over-limit';
      if (needToken && asked.tokens > 0 && g.tokens === 0) return 'rate-limited';
    }
    const pkey = t.key ?? '';
    const outstanding = this.#pendingByKey.get(pkey);
    if (outstanding !== undefined) {
      this.#pending.get(outstanding)!.waiters.push(t);
      return 'wait';
    }
    const seq = ++this.#seq;
    const request: LeaseRequest = {
      seq,
      app: needApp ? this.#appBlock : 0,
      key: t.key,
      slots: needSlot ? this.#slotBlock : 0,
      tokens: needToken ? this.#tokenBlock : 0,
    };
    this.#pending.set(seq, { request, waiters: [t] });
    this.#pendingByKey.set(pkey, seq);
    this.#send.request(request);
    return 'wait';
  }

  onGrant(g: LeaseGrant): void {
    const p = this.#pending.get(g.seq);
    if (p === undefined) return;
    this.#pending.delete(g.seq);
    const key = p.request.key;
    this.#pendingByKey.delete(key ?? '');
    this.#app.leased += g.app;
    if (g.app > 0 || this.#maxConnections > 0) this.#app.keep = g.keepApp;
    if (key !== null) {
      let e = this.#sources.get(key);
      if (e === undefined) {
        e = { leased: 0, used: 0, keep: 0, tokens: 0, lastUsed: Date.now() };
        this.#sources.set(key, e);
      }
      e.leased += g.slots;
      e.tokens += g.tokens;
      e.keep = g.keepSlots;
    }
    const after = { grant: g, asked: p.request };
    for (const t of p.waiters) {
      if (t.closed) continue;
      const r = this.#attempt(t, after);
      if (r !== 'wait') t.decided(t, r);
    }
    // Waiters that closed meanwhile may leave spare above what we may keep.
    this.#trimApp(false);
    if (key !== null) this.#trimSource(key, false);
  }

  /** The authority wants every spare slot of this kind back, now. */
  onRecall(key: string | null): void {
    if (key === null) {
      this.#app.keep = 0;
      this.#trimApp(true);
    } else {
      const e = this.#sources.get(key);
      if (e !== undefined) e.keep = 0;
      this.#trimSource(key, true);
    }
  }

  /**
   * A connection admitted by another process and handed over (issue 16): it holds an app slot and a
   * source slot here like any admitted one, but is never refused and spends no rate token (it is not
   * a new connection). Slots not leased here yet are used on credit and asked for; until the grant
   * (or if the authority has none left, when new connections took the ones the old process gave
   * back) the app may be over its limit by the connections handed over meanwhile.
   */
  adopt(t: Ticket, lease?: { readonly app: number; readonly slots: number; readonly key: string | null }): void {
    if (!this.leases) return;
    if (this.#perSource) t.key = sourceKey(t.address, this.#prefix6);
    const app = this.#app;
    // Leases that came with it (moved by the daemon from the old process): ours now.
    if (lease !== undefined) {
      app.leased += lease.app;
      if (lease.key !== null && lease.slots > 0) {
        let e = this.#sources.get(lease.key);
        if (e === undefined) {
          e = { leased: 0, used: 0, keep: 0, tokens: 0, lastUsed: Date.now() };
          this.#sources.set(lease.key, e);
        }
        e.leased += lease.slots;
      }
    }
    let needApp = false;
    let needSlot = false;
    if (this.#maxConnections > 0) {
      needApp = app.leased - app.used <= 0;
      app.used++;
      t.holds |= HOLDS_APP;
    }
    if (t.key !== null && this.#perSourceMax > 0) {
      let e = this.#sources.get(t.key);
      if (e === undefined) {
        e = { leased: 0, used: 0, keep: 0, tokens: 0, lastUsed: Date.now() };
        this.#sources.set(t.key, e);
      }
      needSlot = e.leased - e.used <= 0;
      e.used++;
      e.lastUsed = Date.now();
      t.holds |= HOLDS_SLOT;
    }
    const pkey = t.key ?? '';
    if ((!needApp && !needSlot) || this.#pendingByKey.has(pkey)) return;
    const seq = ++this.#seq;
    const request: LeaseRequest = { seq, app: needApp ? this.#appBlock : 0, key: t.key, slots: needSlot ? this.#slotBlock : 0, tokens: 0 };
    this.#pending.set(seq, { request, waiters: [] });
    this.#pendingByKey.set(pkey, seq);
    this.#send.request(request);
  }

  /**
   * The ticket's connection is handed to another process (issue 16): what it holds is neither used
   * nor leased here any more, and is not given back — the daemon moves those leases to the adopter.
   * Returns them (undefined: none).
   */
  handOver(t: Ticket): { app: number; slots: number; key: string | null } | undefined {
    if (t.closed) return undefined;
    t.closed = true;
    let app = 0;
    let slots = 0;
    if ((t.holds & HOLDS_APP) !== 0) {
      this.#app.used--;
      this.#app.leased--;
      app = 1;
    }
    const e = t.key === null ? undefined : this.#sources.get(t.key);
    if ((t.holds & HOLDS_SLOT) !== 0 && e !== undefined) {
      e.used--;
      e.leased--;
      e.lastUsed = Date.now();
      slots = 1;
    }
    t.holds = 0;
    return app + slots > 0 ? { app, slots, key: t.key } : undefined;
  }

  /** The ticket's connection closed (or was refused): give back what it holds. Idempotent. */
  release(t: Ticket): void {
    if (t.closed) return;
    t.closed = true;
    if ((t.holds & HOLDS_APP) !== 0) {
      this.#app.used--;
      this.#trimApp(false);
    }
    if ((t.holds & HOLDS_SLOT) !== 0 && t.key !== null) {
      const e = this.#sources.get(t.key);
      if (e !== undefined) {
        e.used--;
        e.lastUsed = Date.now();
        this.#trimSource(t.key, false);
      }
    }
    t.holds = 0;
  }

  /** Return the leases of sources idle for a while (bounded memory); call every few seconds. */
  sweep(now = Date.now()): void {
    for (const [key, e] of this.#sources) {
      if (e.used > 0 || now - e.lastUsed < IDLE_MS || this.#pendingByKey.has(key)) continue;
      this.#sources.delete(key);
      if (e.leased > 0 || e.tokens > 0) this.#send.giveBack({ app: 0, key, slots: e.leased, tokens: e.tokens, recall: false });
    }
  }

  #trimApp(recall: boolean): void {
    const a = this.#app;
    const spare = a.leased - a.used - a.keep;
    if (spare > 0 || recall) {
      const n = Math.max(0, spare);
      a.leased -= n;
      this.#send.giveBack({ app: n, key: null, slots: 0, tokens: 0, recall });
    }
  }

  #trimSource(key: string, recall: boolean): void {
    const e = this.#sources.get(key);
    const spare = e === undefined ? 0 : e.leased - e.used - e.keep;
    if (spare > 0 || recall) {
      const n = Math.max(0, spare);
      if (e !== undefined) e.leased -= n;
      this.#send.giveBack({ app: 0, key, slots: n, tokens: 0, recall });
    }
  }
}
