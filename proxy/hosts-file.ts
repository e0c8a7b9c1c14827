// The names /etc/hosts lists: the DNS cache sends those (and localhost) to dns.lookup, which reads
// the hosts file, instead of the resolver (c-ares), which does not.
import { readFileSync } from 'node:fs';
import { isIP } from 'node:net';

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

export function readHostsNames(path = '/etc/hosts'): ReadonlySet<string> {
  try {
    return parseHosts(readFileSync(path, 'utf8'));
  } catch {
    return new Set(); // no hosts file: every name goes to DNS (localhost still uses dns.lookup)
  }
}
