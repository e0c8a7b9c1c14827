// Bounds on a simulate run, in their own module so the CLI can validate options without loading
// simulate.ts (and hdr-histogram-js, ~60 ms) for every ftest command.

export const SIMULATE_LIMITS = {
  maxConcurrency: 10_000,
  maxTotal: 10_000_000,
  /** --duration is capped so a forgotten run still ends. */
  maxDurationMs: 3_600_000,
} as const;
