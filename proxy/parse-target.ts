// parseTarget: the one parser of a target address, "host:port" or "[ipv6]:port", for the config
// schema, the config → spec mapping and ftest. Pure; config-time only, never per connection.
// Contract: a parsed target, or a reason that names the value and the fix (it is shown as is).
// Hosts are IPv4 literals, bracketed IPv6 literals, or DNS names as the OS resolver takes them
// ("_" allowed, for Docker Compose service names; one trailing dot allowed).
import { isIPv4, isIPv6 } from 'node:net';
import type { TargetSpec } from './spec.ts';

/** The address part of a TargetSpec. */
export type TargetAddress = Pick<TargetSpec, 'raw' | 'host' | 'port'>;

export type ParsedTarget = { readonly ok: true; readonly target: TargetAddress } | { readonly ok: false; readonly reason: string };

const TARGET_LABEL = /^[A-Za-z0-9_](?:[A-Za-z0-9_-]{0,61}[A-Za-z0-9_])?$/;

export function parseTarget(raw: string): ParsedTarget {
  if (raw.trim() === '') return bad('target is empty: write it as "host:port"');
  if (raw.trim() !== raw) return bad(`target "${raw}" has spaces around it: remove them`);
  const parts = split(raw);
  if (parts === undefined) return bad(malformed(raw));
  const { host, port } = parts;
  if (raw.startsWith('[')) {
    if (!isIPv6(host)) return bad(`target "${raw}": brackets are only for IPv6 addresses, as in "[::1]:${port}"`);
  } else if (!isIPv4(host) && !isHostName(host)) {
    return bad(`target "${raw}": "${host}" is not a valid host name or IP address`);
  }
  return { ok: true, target: { raw, host, port } };
}

function bad(reason: string): ParsedTarget {
  return { ok: false, reason };
}

/** The shape alone: host and a port in 1–65535, or undefined. */
function split(raw: string): { host: string; port: number } | undefined {
  let host: string;
  let portText: string;
  if (raw.startsWith('[')) {
    const close = raw.indexOf(']');
    if (close < 0 || raw[close + 1] !== ':') return undefined;
    host = raw.slice(1, close);
    portText = raw.slice(close + 2);
    if (!host.includes(':')) return undefined;
  } else {
    const colon = raw.lastIndexOf(':');
    if (colon <= 0 || raw.indexOf(':') !== colon) return undefined;
    host = raw.slice(0, colon);
    portText = raw.slice(colon + 1);
  }
  if (!/^[0-9]{1,5}$/.test(portText)) return undefined;
  const port = Number(portText);
  if (port < 1 || port > 65535) return undefined;
  return { host, port };
}

/** A DNS host name a target may use (not an IP literal). */
function isHostName(host: string): boolean {
  const name = host.endsWith('.') ? host.slice(0, -1) : host;
  if (name.length === 0 || name.length > 253) return false;
  // "999.1.1.1" parses as labels but is a mistyped IPv4 address, not a name.
  if (/^[0-9.]+$/.test(name)) return false;
  return name.split('.').every((label) => TARGET_LABEL.test(label));
}

/** Why a target that does not have the shape does not: the most likely slip, and its fix. */
function malformed(raw: string): string {
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
