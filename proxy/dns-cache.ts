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

import { promises as dnsPromises } from 'node:dns';
import { readFileSync } from 'node:fs';
import { isIP } from 'node:net';
import { createResolver, DNS_SERVERS_ENV, type Resolver } from './resolver.ts';

export { createResolver, type Resolver };

export type DnsErrorCode = 'ERR_DNS_NOT_FOUND' | 'ERR_DNS_FAILED';

export class DnsError extends Error {
  readonly code: DnsErrorCode;
  readonly host: string;
  constructor(code: DnsErrorCode, host: string, cause: unknown) {
    const why = describeCause(cause);
    super(
      code === 'ERR_DNS_NOT_FOUND'
        ? `DNS name "${host}" has no A or AAAA record (${why}); check the target's host in the app config`
        : `Cannot resolve "${host}": ${why}; check the nameservers (${DNS_SERVERS_ENV} or /etc/resolv.conf)`,
      { cause },
    );
    this.name = 'DnsError';
    this.code = code;
    this.host = host;
  }
}

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

interface Answer {
  addrs: readonly string[];
  ttlMs: number;
}

interface Entry {
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
  /** LRU list links: newer is toward the head (most recently used). */
  newer: Entry | undefined;
  older: Entry | undefined;
}

const TTL = { ttl: true } as const;
const EMPTY: readonly string[] = Object.freeze([]);
const NO_ANSWER_CODES = new Set(['ENOTFOUND', 'ENODATA']);
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
  #head: Entry | undefined;
  #tail: Entry | undefined;
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
    this.#touch(e);
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
    this.#head = undefined;
    this.#tail = undefined;
  }

  #refresh(e: Entry): Promise<readonly string[]> {
    this.#queries++;
    const query = e.viaLookup ? this.#lookup(e.host) : this.#query(e.host);
    const p = query.then(
      (answer) => this.#store(e, answer),
      (err: unknown) => this.#fail(e, err),
    );
    e.inflight = p;
    return p;
  }

  #store(e: Entry, answer: Answer): readonly string[] {
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

  /** A and AAAA together; one family answering is enough. */
  async #query(host: string): Promise<Answer> {
    const [v4, v6] = await Promise.allSettled([this.#resolver.resolve4(host, TTL), this.#resolver.resolve6(host, TTL)]);
    const addrs: string[] = [];
    let ttl = Infinity;
    for (const family of [v4, v6]) {
      if (family.status !== 'fulfilled') continue;
      for (const record of family.value) {
        if (!addrs.includes(record.address)) addrs.push(record.address);
        ttl = Math.min(ttl, record.ttl);
      }
    }
    if (addrs.length > 0) return { addrs: Object.freeze(addrs), ttlMs: this.#clampTtl(ttl * 1000) };
    const reasons = [v4, v6].flatMap((family) => (family.status === 'rejected' ? [family.reason as unknown] : []));
    const failure = reasons.find((reason) => !NO_ANSWER_CODES.has(errorCode(reason)));
    if (failure !== undefined) throw new DnsError('ERR_DNS_FAILED', host, failure);
    throw new DnsError('ERR_DNS_NOT_FOUND', host, reasons[0] ?? new Error('empty answer'));
  }

  async #lookup(host: string): Promise<Answer> {
    let results: { address: string; family: number }[];
    try {
      results = await dnsPromises.lookup(host, { all: true });
    } catch (err) {
      throw new DnsError(errorCode(err) === 'ENOTFOUND' ? 'ERR_DNS_NOT_FOUND' : 'ERR_DNS_FAILED', host, err);
    }
    const addrs: string[] = [];
    for (const family of [4, 6]) {
      for (const r of results) if (r.family === family && !addrs.includes(r.address)) addrs.push(r.address);
    }
    if (addrs.length === 0) throw new DnsError('ERR_DNS_NOT_FOUND', host, new Error('dns.lookup returned no address'));
    return { addrs: Object.freeze(addrs), ttlMs: this.#hostsTtlMs };
  }

  #clampTtl(ttlMs: number): number {
    return Math.min(this.#maxTtlMs, Math.max(this.#minTtlMs, ttlMs));
  }

  #entryFor(host: string): Entry {
    const found = this.#entries.get(host);
    if (found !== undefined) {
      this.#touch(found);
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
    this.#pushHead(e);
    while (this.#entries.size > this.#maxEntries && this.#tail !== undefined) {
      const evicted = this.#tail;
      this.#unlink(evicted);
      this.#entries.delete(evicted.host);
    }
    return e;
  }

  #touch(e: Entry): void {
    if (this.#head === e) return;
    this.#unlink(e);
    this.#pushHead(e);
  }

  #pushHead(e: Entry): void {
    e.newer = undefined;
    e.older = this.#head;
    if (this.#head !== undefined) this.#head.newer = e;
    this.#head = e;
    this.#tail ??= e;
  }

  #unlink(e: Entry): void {
    if (e.newer !== undefined) e.newer.older = e.older;
    else this.#head = e.older;
    if (e.older !== undefined) e.older.newer = e.newer;
    else this.#tail = e.newer;
    e.newer = undefined;
    e.older = undefined;
  }
}

/** Names listed in a hosts file (lower-cased); lines are `ip name [aliases…]`, `#` starts a comment. */
export function parseHosts(text: string): Set<string> {
  const names = new Set<string>();
  for (const line of text.split('\n')) {
    const fields = line.replace(/#.*/, '').trim().split(/\s+/);
    if (fields.length < 2 || isIP(fields[0] ?? '') === 0) continue;
    for (const name of fields.slice(1)) names.add(name.toLowerCase());
  }
  return names;
}

function readHostsNames(): ReadonlySet<string> {
  try {
    return parseHosts(readFileSync('/etc/hosts', 'utf8'));
  } catch {
    return new Set(); // no hosts file: every name goes to DNS (localhost still uses dns.lookup)
  }
}

function errorCode(err: unknown): string {
  const code = (err as { code?: unknown } | null)?.code;
  return typeof code === 'string' ? code : '';
}

function describeCause(cause: unknown): string {
  if (cause === undefined) return 'no answer';
  const code = errorCode(cause);
  const message = cause instanceof Error ? cause.message : String(cause);
  return code !== '' && !message.includes(code) ? `${code}: ${message}` : message;
}

function asError(err: unknown): Error {
  return err instanceof Error ? err : new Error(String(err));
}

function nonNegative(name: string, value: number): number {
  if (!(value >= 0)) throw new RangeError(`DnsCache: ${name} must be a number >= 0, got ${value}`);
  return value;
}
