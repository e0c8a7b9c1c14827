// simulate: concurrent load against one address. `concurrency` workers each loop: claim an
// exchange, connect (or reuse their connection with `keepalive`), write the data, read the full
// echo, close. Dial and round-trip times (write → complete reply) go into HDR histograms;
// failures are counted by kind, reported to `onError` as they happen and the first few kept
// with timestamps. The run ends when `total` exchanges were claimed, `durationMs` passed, or
// `signal` aborted, whichever comes first; exchanges in flight then finish (each is bounded by
// `timeoutMs`), so stopping never manufactures errors.
// With `keepalive`, a worker whose dial fails waits before dialling again (10 ms doubling up to
// 1 s, reset by a successful dial): a refusing target gets a handful of attempts, not a tight
// reconnect loop. The waits are reported (`redialBackoff`). A new connection per exchange keeps
// no such wait: there each exchange is its own measurement.
import { setTimeout as wait } from 'node:timers/promises';

import { performance } from 'node:perf_hooks';
import type { Target } from './address.ts';
import { dial, type Connection } from './connection.ts';
import { FtestError } from './errors.ts';
import { FAILURE_KINDS, type Failure, type FailureKind } from './failure.ts';
import { LatencyHistogram, type Percentiles } from './latency.ts';
import { SIMULATE_LIMITS } from './simulate-limits.ts';

export { SIMULATE_LIMITS };

export interface SimulateOptions {
  target: Target;
  /** Workers, each with at most one connection open. Default 10. */
  concurrency?: number;
  /** Exchanges to run. Default 1000, or unlimited (until durationMs) when durationMs is given. */
  total?: number;
  durationMs?: number;
  /** Default "ping". */
  data?: string | Buffer;
  /** Reuse each worker's connection across exchanges (reconnecting after a failure). */
  keepalive?: boolean;
  /** Per dial and per exchange. Default 5000. */
  timeoutMs?: number;
  signal?: AbortSignal;
  /** Called on every failure as it happens. */
  onError?: (failure: Failure) => void;
  /** Called after every finished exchange with the number finished so far. */
  onProgress?: (done: number) => void;
  /** How many failures the summary keeps (the first ones). Default 100. */
  keepFailures?: number;
}

export interface SimulateSummary {
  target: string;
  concurrency: number;
  keepalive: boolean;
  /** Finished exchanges: ok + errors. */
  exchanges: number;
  ok: number;
  errors: number;
  errorsByKind: Record<FailureKind, number>;
  elapsedMs: number;
  /** Successful exchanges per second of elapsed time. */
  exchangesPerSec: number;
  dial: Percentiles;
  rtt: Percentiles;
  stoppedBy: 'total' | 'duration' | 'signal';
  /** The first `keepFailures` failures, in order. */
  failures: Failure[];
  /** keepalive only: waits after failed dials before dialling again, and their total. */
  redialBackoff: { waits: number; waitedMs: number };
}

/** Wait before keepalive redial number `failedDials` (1-based) in a row. */
export function redialDelayMs(failedDials: number): number {
  return Math.min(1000, 10 * 2 ** Math.max(0, failedDials - 1));
}

export async function simulate(options: SimulateOptions): Promise<SimulateSummary> {
  const { target, keepalive = false, signal, onError, onProgress } = options;
  const concurrency = checkInt('concurrency', options.concurrency ?? 10, 1, SIMULATE_LIMITS.maxConcurrency);
  const durationMs = options.durationMs === undefined ? undefined : checkInt('durationMs', options.durationMs, 1, SIMULATE_LIMITS.maxDurationMs);
  const total = checkInt('total', options.total ?? (durationMs === undefined ? 1000 : SIMULATE_LIMITS.maxTotal), 1, SIMULATE_LIMITS.maxTotal);
  const timeoutMs = checkInt('timeoutMs', options.timeoutMs ?? 5000, 1, SIMULATE_LIMITS.maxDurationMs);
  const keepFailures = checkInt('keepFailures', options.keepFailures ?? 100, 0, SIMULATE_LIMITS.maxTotal);
  const data = Buffer.from(options.data ?? 'ping');

  const dialLatency = new LatencyHistogram();
  const rttLatency = new LatencyHistogram();
  const errorsByKind = Object.fromEntries(FAILURE_KINDS.map((kind) => [kind, 0])) as Record<FailureKind, number>;
  const failures: Failure[] = [];
  let claimed = 0;
  let ok = 0;
  let errors = 0;
  let stoppedBy: SimulateSummary['stoppedBy'] = 'total';
  const redialBackoff = { waits: 0, waitedMs: 0 };
  const startedAt = performance.now();
  const deadline = durationMs === undefined ? Infinity : startedAt + durationMs;

  const claim = (): boolean => {
    if (signal?.aborted) stoppedBy = 'signal';
    else if (performance.now() >= deadline) stoppedBy = 'duration';
    else if (claimed < total) {
      claimed++;
      return true;
    }
    return false;
  };
  const fail = (failure: Failure) => {
    errors++;
    errorsByKind[failure.kind]++;
    if (failures.length < keepFailures) failures.push(failure);
    onError?.(failure);
  };

  const backOff = async (failedDials: number) => {
    const ms = Math.min(redialDelayMs(failedDials), Math.max(0, deadline - performance.now()));
    if (ms <= 0 || signal?.aborted) return;
    redialBackoff.waits++;
    const t0 = performance.now();
    await wait(ms, undefined, { signal }).catch(() => undefined);
    redialBackoff.waitedMs += performance.now() - t0;
  };

  const worker = async () => {
    let connection: Connection | undefined;
    let failedDials = 0;
    while (claim()) {
      let exchangeTimeoutMs = timeoutMs;
      if (!connection?.usable) {
        connection?.destroy();
        connection = undefined;
        const dialled = await dial(target, timeoutMs);
        if (dialled.ok) {
          failedDials = 0;
          dialLatency.record(dialled.dialMs);
          connection = dialled.connection;
          exchangeTimeoutMs = Math.max(1, timeoutMs - dialled.dialMs);
        } else {
          fail(dialled.failure);
          if (keepalive) await backOff(++failedDials);
        }
      }
      if (connection) {
        const result = await connection.exchange(data, { timeoutMs: exchangeTimeoutMs });
        if (result.ok) {
          ok++;
          rttLatency.record(result.rttMs);
        } else {
          fail(result.failure);
          connection = undefined; // the exchange destroyed it
        }
        if (connection && !keepalive) {
          await connection.close(Math.min(timeoutMs, 1000));
          connection = undefined;
        }
      }
      onProgress?.(ok + errors);
    }
    if (connection) await connection.close(Math.min(timeoutMs, 1000));
  };

  await Promise.all(Array.from({ length: Math.min(concurrency, total) }, worker));
  const elapsedMs = performance.now() - startedAt;
  return {
    target: target.label,
    concurrency,
    keepalive,
    exchanges: ok + errors,
    ok,
    errors,
    errorsByKind,
    elapsedMs: round(elapsedMs),
    exchangesPerSec: round(ok / (elapsedMs / 1000)),
    dial: dialLatency.percentiles(),
    rtt: rttLatency.percentiles(),
    stoppedBy,
    failures,
    redialBackoff: { waits: redialBackoff.waits, waitedMs: round(redialBackoff.waitedMs) },
  };
}

function checkInt(name: string, value: number, min: number, max: number): number {
  if (!Number.isInteger(value) || value < min || value > max) {
    throw new FtestError('ERR_FTEST_OPTION', `Invalid ${name} ${value}: expected an integer from ${min} to ${max}`);
  }
  return value;
}

function round(value: number): number {
  return Number.isFinite(value) ? Math.round(value * 1000) / 1000 : 0;
}
