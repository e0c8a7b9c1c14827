// Commander argument parsers: each turns our FtestError into commander's InvalidArgumentError,
// so a bad value is reported the commander way ("error: option '-n <N>' argument '0' is
// invalid. …") with exit code 1.

import { InvalidArgumentError } from 'commander';
import { parsePort, parseTarget, type Target } from './address.ts';
import { parseDuration } from './duration.ts';
import { SIMULATE_LIMITS } from './simulate-limits.ts';

function commanderParser<T>(parse: (text: string) => T): (text: string) => T {
  return (text) => {
    try {
      return parse(text);
    } catch (err) {
      throw new InvalidArgumentError((err as Error).message);
    }
  };
}

export const targetArg = commanderParser<Target>(parseTarget);

export function durationArg(text: string): number {
  const ms = commanderParser(parseDuration)(text);
  if (ms > SIMULATE_LIMITS.maxDurationMs) throw new InvalidArgumentError(`at most ${SIMULATE_LIMITS.maxDurationMs / 60_000}m`);
  return ms;
}

/** For variadic PORT... arguments: commander passes the previous values along. A port given twice
 * is the user's slip, named as such (not an EADDRINUSE from our own second bind); 0 may repeat. */
export function portListArg(text: string, previous: number[] | undefined): number[] {
  const port = commanderParser((t) => parsePort(t, { allowZero: true }))(text);
  if (port !== 0 && previous?.includes(port)) throw new InvalidArgumentError(`port ${port} is given twice: list each port once`);
  return [...(previous ?? []), port];
}

export function intArg(min: number, max: number): (text: string) => number {
  return (text) => {
    if (!/^\d+$/.test(text) || Number(text) < min || Number(text) > max) {
      throw new InvalidArgumentError(`expected an integer from ${min} to ${max}`);
    }
    return Number(text);
  };
}
