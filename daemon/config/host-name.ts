// SNI name and Listen address checks for the config. Pure. Returns a plain reason
// (naming the value and the fix) or undefined when valid, so the schema can report it as is.
// (Target addresses are checked by proxy's parseTarget, the one parser of them.)
import { isIP, isIPv6 } from 'node:net';
import { parseTarget } from '../../proxy/index.ts';

// SNI carries a DNS host name (RFC 6066): letters, digits and hyphens, no trailing dot.
const SNI_LABEL = /^[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?$/;

/** Why `name` is not a valid route SNI name ("a.example.test" or "*.example.test"), or undefined. */
export function sniNameProblem(name: string): string | undefined {
  const lower = name.toLowerCase();
  const hint = 'use a host name such as "a.example.test" or a wildcard such as "*.example.test"';
  if (isIP(lower.replace(/^\[|\]$/g, '')) !== 0) {
    return `SNI name "${name}" is an IP address; clients never send one in SNI: ${hint}`;
  }
  if (lower === '*') return 'SNI name "*" would match every name: list the names, and let the app\'s Targets take the rest';
  const bare = lower.startsWith('*.') ? lower.slice(2) : lower;
  if (bare.includes('*')) {
    return `SNI name "${name}" is invalid: a wildcard may only be the whole first label, as in "*.example.test"`;
  }
  if (bare.endsWith('.')) return `SNI name "${name}" ends with a dot: remove it (SNI never carries the root dot)`;
  if (bare.length === 0 || bare.length > 253 || !bare.split('.').every((label) => SNI_LABEL.test(label))) {
    return `SNI name "${name}" is not a valid host name (letters, digits, "-" and "." only): ${hint}`;
  }
  return undefined;
}

/** Why `raw` is not a bind address for Listen (an IPv4 or IPv6 literal), or undefined when it is. */
export function listenAddressProblem(raw: string): string | undefined {
  if (isIP(raw) !== 0) return undefined;
  const bare = raw.startsWith('[') && raw.endsWith(']') ? raw.slice(1, -1) : undefined;
  if (bare !== undefined && isIPv6(bare)) return `listen address "${raw}": write it without brackets, as "${bare}"`;
  if (parseTarget(raw).ok) return `listen address "${raw}" has a port: Listen takes addresses only ("127.0.0.1"), Ports gives the ports`;
  return `listen address "${raw}" is not an IP address: write one this machine has, as "127.0.0.1" or "::1" (names are not resolved; remove Listen to listen on every interface)`;
}
