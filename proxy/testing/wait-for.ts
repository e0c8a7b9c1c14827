// waitFor: the one way tests wait — poll a condition with a deadline, never sleep a fixed time.
// Deadlines are generous on purpose (the machine may be 2 busy cores): a deadline bounds a hang,
// it is not a speed claim. Used by *.test.ts and test support only.

/** Poll `cond` every `everyMs` until it returns a truthy value (returned) or `ms` passes (then throw, naming `what` and the last error). */
export async function waitFor<T>(cond: () => T | Promise<T>, ms = 10_000, what = 'condition', everyMs = 20): Promise<NonNullable<T>> {
  const deadline = Date.now() + ms;
  let last: unknown;
  for (;;) {
    try {
      const v = await cond();
      if (v) return v as NonNullable<T>;
    } catch (err) {
      last = err;
    }
    if (Date.now() >= deadline) throw new Error(`timed out after ${ms} ms waiting for ${what}${last ? `: ${String(last)}` : ''}`);
    await new Promise((r) => setTimeout(r, everyMs));
  }
}
