// Host and SNI name checks for the config: what a target's host and a route's SNI name may be.
// Pure. Each check returns a plain reason (naming the value and the fix) or undefined when valid,
// so the schema and the rules can report it as is.
import { isIP, isIPv4, isIPv6 } from 'node:net';
import { parseTarget } from '../../proxy/spec.ts';

// Targets are resolved by the OS resolver, which accepts "_" (Docker Compose service names),
// so labels allow it; a single trailing dot (fully-qualified) is fine too.
const TARGET_LABEL = /^[A-Za-z0-9_](?:[A-Za-z0-9_-]{0,61}[A-Za-z0-9_])?$/;
// SNI carries a DNS host name (RFC 6066): letters, digits and hyphens, no trailing dot.
const SNI_LABEL = /^[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?$/;

/** True for a DNS host name a target may use (not an IP literal). */
export function isTargetHostName(host: string): boolean {
  const name = host.endsWith('.') ? host.slice(0, -1) : host;
  if (name.length === 0 || name.length > 253) return false;
  // "999.1.1.1" parses as labels but is a mistyped IPv4 address, not a name.
  if (/^[0-9.]+$/.test(name)) return false;
  return name.split('.').every((label) => TARGET_LABEL.test(label));
}

/** Why `raw` is not a usable `host:port` / `[ipv6]:port` target, or undefined when it is. */
export function targetProblem(raw: string): string | undefined {
  if (raw.trim() === '') return 'target is empty: write it as "host:port"';
  if (raw.trim() !== raw) return `target "${raw}" has spaces around it: remove them`;
  const parsed = parseTarget(raw);
  if (parsed) {
    if (raw.startsWith('[')) {
      return isIPv6(parsed.host) ? undefined : `target "${raw}": brackets are only for IPv6 addresses, as in "[::1]:${parsed.port}"`;
    }
    if (isIPv4(parsed.host) || isTargetHostName(parsed.host)) return undefined;
    return `target "${raw}": "${parsed.host}" is not a valid host name or IP address`;
  }
  return malformedTarget(raw);
}

function malformedTarget(raw: string): string {
  const shape = `target "${raw}" is not "host:port" or "[ipv6]:port"`;
  if (raw.startsWith('[')) {
    const inside = /^\[([^\]]*)\](.*)$/.exec(raw);
    if (inside && inside[1] !== undefined && !inside[1].includes(':')) {
      return `${shape}: brackets are only for IPv6 addresses, write "${inside[1]}${inside[2] ?? ''}"`;
    }
    return `${shape}: write IPv6 targets as "[address]:port", as in "[::1]:9000"`;
  }
  const colons = raw.split(':').length - 1;
  if (colons === 0) return `target "${raw}" has no port: write it as "${raw}:PORT"`;
  if (colons > 1) {
    // An IPv6 address written without brackets: suggest the bracketed form when it is one.
    const last = raw.lastIndexOf(':');
    const host = raw.slice(0, last);
    if (isIPv6(host) && /^[0-9]+$/.test(raw.slice(last + 1))) {
      return `${shape}: write IPv6 addresses in brackets, as in "[${host}]:${raw.slice(last + 1)}"`;
    }
    if (isIPv6(raw)) return `target "${raw}" has no port: write it as "[${raw}]:PORT"`;
    return `${shape}: write IPv6 addresses in brackets, as in "[::1]:9000"`;
  }
  const colon = raw.indexOf(':');
  const port = raw.slice(colon + 1);
  if (colon === 0) return `target "${raw}" has no host: write it as "HOST${raw}"`;
  if (port === '') return `target "${raw}" has no port after ":"`;
  if (!/^[0-9]+$/.test(port)) return `target "${raw}": port "${port}" is not a number`;
  return `target "${raw}": port ${port} is outside 1–65535`;
}

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
  if (parseTarget(raw) !== undefined) return `listen address "${raw}" has a port: Listen takes addresses only ("127.0.0.1"), Ports gives the ports`;
  return `listen address "${raw}" is not an IP address: write one this machine has, as "127.0.0.1" or "::1" (names are not resolved; remove Listen to listen on every interface)`;
}
