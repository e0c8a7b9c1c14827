// Target addresses as users type them: "127.0.0.1:5001", "[::1]:5001", "localhost:5001".
// IPv6 literals must be bracketed, since "::1:5001" is itself a valid IPv6 address.

import { isIPv6 } from 'node:net';
import { FtestError } from './errors.ts';

export interface Target {
  /** Hostname or IP literal, without brackets. */
  readonly host: string;
  readonly port: number;
  /** For messages: "127.0.0.1:5001", "[::1]:5001". */
  readonly label: string;
}

/** "host:port" with IPv6 literals bracketed. */
export function formatHostPort(host: string, port: number): string {
  return isIPv6(host) ? `[${host}]:${port}` : `${host}:${port}`;
}

/** Parses a port in 0..65535 (or 1..65535 with `allowZero: false`); throws ERR_FTEST_OPTION. */
export function parsePort(text: string, { allowZero = false } = {}): number {
  const min = allowZero ? 0 : 1;
  if (!/^\d{1,5}$/.test(text) || Number(text) < min || Number(text) > 65535) {
    throw new FtestError('ERR_FTEST_OPTION', `Invalid port "${text}": expected an integer from ${min} to 65535`);
  }
  return Number(text);
}

export function parseTarget(text: string): Target {
  const bad = (why: string) =>
    new FtestError('ERR_FTEST_ADDRESS', `Invalid address "${text}": ${why} (expected HOST:PORT, e.g. 127.0.0.1:5001 or [::1]:5001)`);
  let host: string;
  let portText: string;
  if (text.startsWith('[')) {
    const close = text.indexOf(']');
    if (close < 0 || text[close + 1] !== ':') throw bad('a bracketed IPv6 address must be followed by ":PORT"');
    host = text.slice(1, close);
    portText = text.slice(close + 2);
    if (!isIPv6(host)) throw bad(`"${host}" is not an IPv6 address`);
  } else {
    const colon = text.lastIndexOf(':');
    if (colon < 0) throw bad('missing ":PORT"');
    host = text.slice(0, colon);
    portText = text.slice(colon + 1);
    if (host.includes(':')) throw bad('put IPv6 addresses in brackets');
  }
  if (host === '') throw bad('missing host');
  let port: number;
  try {
    port = parsePort(portText);
  } catch (err) {
    throw bad(`port "${portText}" must be an integer from 1 to 65535`);
  }
  return { host, port, label: formatHostPort(host, port) };
}
