// backoffDelay: how long to wait before restart attempt number `attempt` (0-based) of a listener
// that died. Exponential so a listener that crashes at start cannot cause a restart storm;
// capped so a long outage still retries every `maxMs`. Pure: no jitter, the caller adds none
// because restarts of one slot are already serialized.

export interface BackoffOptions {
  readonly baseMs?: number;
  readonly maxMs?: number;
  readonly factor?: number;
}

export const BACKOFF_DEFAULTS = { baseMs: 100, maxMs: 30_000, factor: 2 } as const;

export function backoffDelay(attempt: number, options: BackoffOptions = {}): number {
  const { baseMs, maxMs, factor } = { ...BACKOFF_DEFAULTS, ...options };
  if (Number.isNaN(attempt) || attempt <= 0) return Math.min(baseMs, maxMs);
  // Math.pow overflows to Infinity for large attempts, which min() then caps.
  return Math.min(maxMs, baseMs * Math.pow(factor, Math.floor(attempt)));
}
