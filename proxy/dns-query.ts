// The two ways the DNS cache asks for a name's addresses, one query each, no caching (that is
// dns-cache.ts): queryDns (A and AAAA through the Resolver, with their TTL) and lookupHost
// (dns.lookup, for localhost and /etc/hosts names; no TTL). Both answer IPv4 first, without
// duplicates, frozen; both throw DnsError.
import { promises as dnsPromises } from 'node:dns';
import { DnsError, errorCode } from './dns-error.ts';
import type { Resolver } from './resolver.ts';

export interface DnsAnswer {
  readonly addrs: readonly string[];
  /** The smallest record TTL (unclamped), or the fixed TTL given to lookupHost. */
  readonly ttlMs: number;
}

const TTL = { ttl: true } as const;
const NO_ANSWER_CODES = new Set(['ENOTFOUND', 'ENODATA']);

/** A and AAAA together; one family answering is enough. */
export async function queryDns(resolver: Resolver, host: string): Promise<DnsAnswer> {
  const [v4, v6] = await Promise.allSettled([resolver.resolve4(host, TTL), resolver.resolve6(host, TTL)]);
  const addrs: string[] = [];
  let ttl = Infinity;
  for (const family of [v4, v6]) {
    if (family.status !== 'fulfilled') continue;
    for (const record of family.value) {
      if (!addrs.includes(record.address)) addrs.push(record.address);
      ttl = Math.min(ttl, record.ttl);
    }
  }
  if (addrs.length > 0) return { addrs: Object.freeze(addrs), ttlMs: ttl * 1000 };
  const reasons = [v4, v6].flatMap((family) => (family.status === 'rejected' ? [family.reason as unknown] : []));
  const failure = reasons.find((reason) => !NO_ANSWER_CODES.has(errorCode(reason)));
  if (failure !== undefined) throw new DnsError('ERR_DNS_FAILED', host, failure);
  throw new DnsError('ERR_DNS_NOT_FOUND', host, reasons[0] ?? new Error('empty answer'));
}

/** dns.lookup (reads /etc/hosts); answers carry no TTL, so they get `ttlMs`. */
export async function lookupHost(host: string, ttlMs: number): Promise<DnsAnswer> {
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
  return { addrs: Object.freeze(addrs), ttlMs };
}
