// resolveHost: how a probe turns a target's host into one address, resolved the way the listeners
// resolve it: with FPROXY_DNS_SERVERS set, a c-ares resolver on those servers (A, then AAAA), as
// proxy/resolver.ts does; otherwise node's dns.lookup (the OS resolver: /etc/hosts, nsswitch).
// IP literals are returned as they are. A name that does not resolve rejects with its DNS code.
import { lookup, Resolver } from 'node:dns/promises';
import net from 'node:net';

export type ResolveHost = (host: string) => Promise<string>;

/** Same variable, same format as the listeners' (proxy/resolver.ts): "127.0.0.1:5353,[::1]:53". */
const DNS_SERVERS_ENV = 'FPROXY_DNS_SERVERS';

export function hostResolver(env: NodeJS.ProcessEnv = process.env, timeoutMs = 2000): ResolveHost {
  const servers = (env[DNS_SERVERS_ENV] ?? '').split(',').map((s) => s.trim()).filter((s) => s !== '');
  if (servers.length === 0) {
    return async (host) => (net.isIP(host) !== 0 ? host : (await lookup(host)).address);
  }
  const resolver = new Resolver({ timeout: timeoutMs, tries: 2 });
  try {
    resolver.setServers(servers);
  } catch (err) {
    // The listeners refuse to start on the same list and say why; probes fail with the reason.
    const reason = `invalid ${DNS_SERVERS_ENV} ${JSON.stringify(servers)}: ${(err as Error).message}`;
    return () => Promise.reject(Object.assign(new Error(reason), { code: 'ERR_DNS_SERVERS_INVALID' }));
  }
  return async (host) => {
    if (net.isIP(host) !== 0) return host;
    try {
      const [a] = await resolver.resolve4(host);
      if (a !== undefined) return a;
    } catch (err) {
      // No A record (ENODATA) may still have AAAA; any other failure is the answer.
      if ((err as NodeJS.ErrnoException).code !== 'ENODATA') throw err;
    }
    const [aaaa] = await resolver.resolve6(host);
    if (aaaa === undefined) throw Object.assign(new Error(`no address for ${host}`), { code: 'ENODATA' });
    return aaaa;
  };
}
