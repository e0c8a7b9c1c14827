// ping: one connection, one exchange, timed in phases (dial, write, read, total). The timeout
// bounds the whole thing: the exchange gets whatever the dial left of it.

import { performance } from 'node:perf_hooks';
import type { Target } from './address.ts';
import { dial } from './connection.ts';
import type { Failure } from './failure.ts';

export interface PingOptions {
  target: Target;
  /** Default "ping". */
  data?: string | Buffer;
  /** Default 2000. */
  timeoutMs?: number;
}

export type PingResult =
  | { ok: true; reply: Buffer; remote: string; dialMs: number; writeMs: number; readMs: number; totalMs: number }
  | { ok: false; failure: Failure; reply: Buffer };

export async function ping({ target, data = 'ping', timeoutMs = 2000 }: PingOptions): Promise<PingResult> {
  const startedAt = performance.now();
  const dialled = await dial(target, timeoutMs);
  if (!dialled.ok) return { ok: false, failure: dialled.failure, reply: Buffer.alloc(0) };
  const { connection, dialMs } = dialled;
  const remote = connection.remote;
  const result = await connection.exchange(Buffer.from(data), { timeoutMs: Math.max(1, timeoutMs - dialMs) });
  if (!result.ok) return { ok: false, failure: result.failure, reply: result.reply };
  const totalMs = performance.now() - startedAt;
  await connection.close(Math.min(timeoutMs, 1000));
  return { ok: true, reply: result.reply, remote, dialMs, writeMs: result.writeMs, readMs: result.readMs, totalMs };
}
