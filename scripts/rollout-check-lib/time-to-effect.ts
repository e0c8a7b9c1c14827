// Time-to-effect of one config rewrite: probe rounds until three in a row see the new config.
// The figure is reported (and compared with --effect-ms by the caller); none within the window
// (10 s, or 3 × --effect-ms when that is longer) is "never".

export interface Effect {
  /** From the rewrite to the start of the first of 3 probe rounds in a row that all saw the new config; undefined past the window. */
  readonly effectMs: number | undefined;
  /** What the last round saw, for the report. */
  readonly seen: string;
}

export const EFFECT_GIVE_UP_MS = 10_000;

/** The window a rewrite has to take effect in, for a given --effect-ms. */
export function effectWindowMs(effectMs: number): number {
  return Math.max(EFFECT_GIVE_UP_MS, 3 * effectMs);
}

/** Runs probe rounds (each says whether it saw the new config) until the rewrite is in effect or `windowMs` passed. */
export async function timeToEffect(writtenAt: number, windowMs: number, round: () => Promise<{ ok: boolean; seen: string }>): Promise<Effect> {
  let seen = '';
  for (let streak = 0, streakStart = 0; performance.now() - writtenAt < windowMs; ) {
    const roundStart = performance.now();
    const r = await round();
    seen = r.seen;
    if (!r.ok) streak = 0;
    else if (streak++ === 0) streakStart = roundStart;
    if (streak === 3) return { effectMs: streakStart - writtenAt, seen };
  }
  return { effectMs: undefined, seen };
}

export const ms = (x: number | undefined) => (x === undefined || Number.isNaN(x) ? 'never' : `${Math.round(x)} ms`);

export function median(xs: number[]): number {
  const s = [...xs].sort((a, b) => a - b);
  return s.length ? s[Math.floor(s.length / 2)]! : NaN;
}
