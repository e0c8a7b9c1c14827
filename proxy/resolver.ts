// Resolver: the one small interface the DNS cache asks for addresses, and its production
// implementation on Node's c-ares `dns.promises.Resolver` (which returns TTLs; `dns.lookup` does not).
// Invariants: a Resolver only sends queries, it never caches (the DnsCache owns every cache
// decision); its nameservers are fixed at creation. Tests point it at a dns2 server on 127.0.0.1.

import { promises as dnsPromises } from 'node:dns';

export interface ResolvedRecord {
  address: string;
  /** Seconds, as the server sent it (0 is legal). */
  ttl: number;
}

export interface Resolver {
  resolve4(name: string, opts: { ttl: true }): Promise<ResolvedRecord[]>;
  resolve6(name: string, opts: { ttl: true }): Promise<ResolvedRecord[]>;
}

export interface CreateResolverOptions {
  /** Timeout of one try. Default 2000. */
  timeoutMs?: number;
  /** Tries per nameserver before giving up. Default 2: Node's 4 lets a dead nameserver stall a cold connect far past connectTimeoutMs. */
  tries?: number;
}

/** Env var naming nameservers for every listener process, e.g. `127.0.0.1:5353,[::1]:53`. */
export const DNS_SERVERS_ENV = 'FPROXY_DNS_SERVERS';

export class DnsServersError extends Error {
  readonly code = 'ERR_DNS_SERVERS_INVALID';
  readonly servers: readonly string[];
  constructor(servers: readonly string[], source: string, cause: unknown) {
    const reason = cause instanceof Error ? cause.message : String(cause);
    super(
      `Invalid DNS servers ${JSON.stringify(servers)} from ${source}: ${reason}; ` +
        'write each as "ip", "ip:port" or "[ipv6]:port"',
      { cause },
    );
    this.name = 'DnsServersError';
    this.servers = servers;
  }
}

/**
 * A c-ares resolver. `servers` like `['127.0.0.1:5353']`; when undefined, `FPROXY_DNS_SERVERS`
 * (comma-separated) if set, else the system's /etc/resolv.conf.
 */
export function createResolver(servers?: readonly string[], opts: CreateResolverOptions = {}): Resolver {
  const resolver = new dnsPromises.Resolver({ timeout: opts.timeoutMs ?? 2000, tries: opts.tries ?? 2 });
  let source = 'createResolver()';
  let list = servers;
  if (list === undefined) {
    const env = process.env[DNS_SERVERS_ENV];
    if (env !== undefined && env.trim() !== '') {
      list = env.split(',').map((s) => s.trim()).filter((s) => s !== '');
      source = DNS_SERVERS_ENV;
    }
  }
  if (list !== undefined) {
    try {
      resolver.setServers(list as string[]);
    } catch (err) {
      throw new DnsServersError(list, source, err);
    }
  }
  return resolver;
}
