// DnsCache: target host → endpoint addresses, for the listener's per-connection hot path.
//
// Owns every caching decision on top of a Resolver (proxy/resolver.ts), which only sends queries.
// Invariants:
// - pick() is a synchronous, allocation-free read: map get, clock read, rotation index. It never
//   waits; a miss returns undefined and the caller awaits resolve().
// - An answer is kept for its smallest record TTL, clamped to [minTtlMs, maxTtlMs], and is never
//   replaced before that TTL ends. Refresh is stale-while-revalidate: the first pick() at or after
//   expiry still returns the old answer and starts one background refresh. We do not refresh ahead
//   of expiry: behind a caching recursive resolver an early query only returns the same record with
//   a shorter remaining TTL, so it costs queries and gains nothing.
// - At most one query per name is in flight; every caller (pick, resolve, warm) shares it.
// - Failures (RFC 8767 serve-stale): when a refresh fails (timeout, SERVFAIL, refused) the last
//   answer keeps being served for up to staleMaxMs past its TTL, and the resolver is asked again
//   at most once per negativeTtlMs. NXDOMAIN / no A and no AAAA is an answer, not a failure: it
//   replaces the old addresses and is cached for negativeTtlMs.
// - Addresses rotate per name, IPv4 first then IPv6; each new cache starts at a random offset so a
//   group of worker processes does not send every first connection to the same endpoint.
// - IP literals never touch the cache. `localhost` and names in /etc/hosts go through dns.lookup
//   (which reads the hosts file; c-ares does not), cached for hostsTtlMs.
// - At most maxEntries names (least recently used evicted); no timers: all work happens on access.
//
// The parts: dns-query.ts asks (A/AAAA or dns.lookup), hosts-file.ts says which names go to
// dns.lookup, dns-error.ts names failures, lru-list.ts orders entries by use; this module decides
// when to ask and what to keep.
import { isIP } from 'node:net';
import { DnsError } from './dns-error.ts';
import { lookupHost, queryDns, type DnsAnswer } from './dns-query.ts';
import { readHostsNames } from './hosts-file.ts';
import { LruList, type LruLinks } from './lru-list.ts';
import { createResolver, type Resolver } from './resolver.ts';

export { createResolver, type Resolver };
export { DnsError, type DnsErrorCode } from './dns-error.ts';
export { parseHosts } from './hosts-file.ts';

export interface DnsCacheOptions {
  /** Default: createResolver() (FPROXY_DNS_SERVERS, else /etc/resolv.conf). */
  resolver?: Resolver;
  /** Floor on a record's TTL. Default 1000. */
  minTtlMs?: number;
  /** Ceiling on a record's TTL. Default 300000. */
  maxTtlMs?: number;
  /** How long NXDOMAIN or a failed query is remembered before asking again. Default 1000. */
  negativeTtlMs?: number;
  /** Cache time for dns.lookup answers (localhost, /etc/hosts names), which carry no TTL. Default 5000. */
  hostsTtlMs?: number;
  /** How long past its TTL an answer may be served while refreshes fail. Default 86400000 (1 day). */
  staleMaxMs?: number;
  /** Names kept; the least recently used is evicted. Default 1000. */
  maxEntries?: number;
  /** Monotonic clock in ms. Default performance.now(). */
  now?: () => number;
  /** Called once per failed query (background refreshes included), for logging. */
  onError?: (host: string, err: DnsError) => void;
}

export interface DnsCacheStats {
  /** Name lookups sent: one per refresh (A and AAAA together, or one dns.lookup). */
  queries: number;
  /** Answers given from a fresh cached entry. */
  hits: number;
  /** Answers given past their TTL (while a refresh runs, or because the resolver fails). */
  staleServed: number;
  entries: number;
}

/** A cached name; its links place it in the LRU list. */
interface Entry extends LruLinks<Entry> {
  readonly host: string;
  readonly viaLookup: boolean;
  /** Last good answer, IPv4 first; empty when there is none. Frozen: callers get this very array. */
  addrs: readonly string[];
  /** Next index to hand out; always < addrs.length when addrs is non-empty. */
  cursor: number;
  expiresAt: number;
  staleUntil: number;
  /** No query before this (set after a failure or NXDOMAIN). */
  retryAt: number;
  error: DnsError | undefined;
  inflight: Promise<readonly string[]> | undefined;
}

const EMPTY: readonly string[] = Object.freeze([]);
const ignore = (): void => {};

export class DnsCache {
  readonly #resolver: Resolver;
  readonly #minTtlMs: number;
  readonly #maxTtlMs: number;
  readonly #negativeTtlMs: number;
  readonly #hostsTtlMs: number;
  readonly #staleMaxMs: number;
  readonly #maxEntries: number;
  readonly #now: () => number;
  readonly #onError: ((host: string, err: DnsError) => void) | undefined;
  readonly #entries = new Map<string, Entry>();
  readonly #lru = new LruList<Entry>();
  #hostsNames: ReadonlySet<string> | undefined;
  #closed = false;
  #queries = 0;
  #hits = 0;
  #staleServed = 0;

  constructor(opts: DnsCacheOptions = {}) {
    this.#minTtlMs = nonNegative('minTtlMs', opts.minTtlMs ?? 1000);
    this.#maxTtlMs = nonNegative('maxTtlMs', opts.maxTtlMs ?? 300_000);
    this.#negativeTtlMs = nonNegative('negativeTtlMs', opts.negativeTtlMs ?? 1000);
    this.#hostsTtlMs = nonNegative('hostsTtlMs', opts.hostsTtlMs ?? 5000);
    this.#staleMaxMs = nonNegative('staleMaxMs', opts.staleMaxMs ?? 86_400_000);
    this.#maxEntries = Math.max(1, Math.floor(nonNegative('maxEntries', opts.maxEntries ?? 1000)));
    if (this.#minTtlMs > this.#maxTtlMs) {
      throw new RangeError(`DnsCache: minTtlMs (${this.#minTtlMs}) must not exceed maxTtlMs (${this.#maxTtlMs})`);
    }
    this.#resolver = opts.resolver ?? createResolver();
    this.#now = opts.now ?? (() => performance.now());
    this.#onError = opts.onError;
  }

  /**
   * The next endpoint address for host (rotating), or undefined when nothing usable is cached
   * (then await resolve()). Past the TTL it still answers and starts one background refresh.
   */
  pick(host: string): string | undefined {
    const e = this.#entries.get(host);
    if (e === undefined) return isIP(host) !== 0 ? host : undefined;
    const n = e.addrs.length;
    if (n === 0) return undefined;
    const now = this.#now();
    if (now < e.expiresAt) {
      this.#hits++;
    } else {
      if (now >= e.staleUntil) return undefined;
      this.#staleServed++;
      if (e.inflight === undefined && now >= e.retryAt && !this.#closed) this.#refresh(e).catch(ignore);
    }
    this.#lru.touch(e);
    const i = e.cursor;
    e.cursor = i + 1 === n ? 0 : i + 1;
    return e.addrs[i];
  }

  /**
   * All addresses for host, IPv4 first. Concurrent calls share one query. Rejects with DnsError
   * only when there is no answer at all, fresh or stale.
   */
  async resolve(host: string): Promise<readonly string[]> {
    if (isIP(host) !== 0) return Object.freeze([host]);
    const e = this.#entryFor(host);
    const now = this.#now();
    if (e.addrs.length > 0 && now < e.expiresAt) {
      this.#hits++;
      return e.addrs;
    }
    if (e.inflight === undefined && now < e.retryAt) {
      // A query failed moments ago: answer from what we have rather than ask again.
      if (e.addrs.length > 0 && now < e.staleUntil) {
        this.#staleServed++;
        return e.addrs;
      }
      throw e.error ?? new DnsError('ERR_DNS_FAILED', host, undefined);
    }
    const addrs = await (e.inflight ?? this.#refresh(e));
    if (this.#now() >= e.expiresAt) this.#staleServed++;
    return addrs;
  }

  /** Resolve many names (the listener's targets, before it reports ready). Never rejects. */
  async warm(hosts: readonly string[]): Promise<{ host: string; error: Error }[]> {
    const unique = [...new Set(hosts)];
    const errors = await Promise.all(
      unique.map((host) => this.resolve(host).then(() => undefined, (error: unknown) => ({ host, error: asError(error) }))),
    );
    return errors.filter((f) => f !== undefined);
  }

  stats(): DnsCacheStats {
    return { queries: this.#queries, hits: this.#hits, staleServed: this.#staleServed, entries: this.#entries.size };
  }

  /** Drops every entry and stops background refreshes. There are no timers to clear. */
  close(): void {
    this.#closed = true;
    this.#entries.clear();
    this.#lru.clear();
  }

  #refresh(e: Entry): Promise<readonly string[]> {
    this.#queries++;
    const query = e.viaLookup ? lookupHost(e.host, this.#hostsTtlMs) : queryDns(this.#resolver, e.host).then((a) => ({ addrs: a.addrs, ttlMs: this.#clampTtl(a.ttlMs) }));
    const p = query.then(
      (answer) => this.#store(e, answer),
      (err: unknown) => this.#fail(e, err),
    );
    e.inflight = p;
    return p;
  }

  #store(e: Entry, answer: DnsAnswer): readonly string[] {
    const now = this.#now();
    e.addrs = answer.addrs;
    e.cursor = e.cursor % answer.addrs.length;
    e.expiresAt = now + answer.ttlMs;
    e.staleUntil = e.expiresAt + this.#staleMaxMs;
    e.retryAt = 0;
    e.error = undefined;
    e.inflight = undefined;
    return e.addrs;
  }

  #fail(e: Entry, err: unknown): readonly string[] {
    const now = this.#now();
    const error = err instanceof DnsError ? err : new DnsError('ERR_DNS_FAILED', e.host, err);
    e.inflight = undefined;
    e.error = error;
    e.retryAt = now + this.#negativeTtlMs;
    this.#onError?.(e.host, error);
    if (error.code === 'ERR_DNS_FAILED' && e.addrs.length > 0 && now < e.staleUntil) return e.addrs;
    e.addrs = EMPTY;
    e.cursor = 0;
    throw error;
  }

  #clampTtl(ttlMs: number): number {
    return Math.min(this.#maxTtlMs, Math.max(this.#minTtlMs, ttlMs));
  }

  #entryFor(host: string): Entry {
    const found = this.#entries.get(host);
    if (found !== undefined) {
      this.#lru.touch(found);
      return found;
    }
    this.#hostsNames ??= readHostsNames();
    const lower = host.toLowerCase();
    const e: Entry = {
      host,
      viaLookup: lower === 'localhost' || this.#hostsNames.has(lower),
      addrs: EMPTY,
      cursor: Math.floor(Math.random() * 64),
      expiresAt: 0,
      staleUntil: 0,
      retryAt: 0,
      error: undefined,
      inflight: undefined,
      newer: undefined,
      older: undefined,
    };
    this.#entries.set(host, e);
    this.#lru.pushHead(e);
    while (this.#entries.size > this.#maxEntries && this.#lru.tail !== undefined) {
      const evicted = this.#lru.tail;
      this.#lru.unlink(evicted);
      this.#entries.delete(evicted.host);
    }
    return e;
  }
}

function asError(err: unknown): Error {
  return err instanceof Error ? err : new Error(String(err));
}

function nonNegative(name: string, value: number): number {
  if (!(value >= 0)) throw new RangeError(`DnsCache: ${name} must be a number >= 0, got ${value}`);
  return value;
}
