// Target addresses as users type them: "127.0.0.1:5001", "[::1]:5001", "localhost:5001" (a thin
// wrapper over proxy/parse-target.ts). IPv6 literals must be bracketed, since "::1:5001" is itself
// a valid IPv6 address.

import { isIPv6 } from 'node:net';
// The data plane's parser, the one for every target address. Imported as its own module, not via
// proxy/index.ts, so that the CLI does not load the listener to parse an argument.
import { parseTarget as parseTargetAddress } from '../proxy/parse-target.ts';
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

/** A target as typed on the command line; throws ERR_FTEST_ADDRESS with the parser's reason. */
export function parseTarget(text: string): Target {
  const parsed = parseTargetAddress(text);
  if (!parsed.ok) throw new FtestError('ERR_FTEST_ADDRESS', `Invalid address: ${parsed.reason}`);
  const { host, port } = parsed.target;
  return { host, port, label: formatHostPort(host, port) };
}
