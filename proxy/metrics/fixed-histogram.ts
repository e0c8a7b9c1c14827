// FixedHistogram: a Prometheus-style histogram with fixed bucket bounds, as plain numbers, so a
// listener can count latencies without prom-client (listener processes stay small) and send the
// counts over IPC. The daemon adds counts from many processes bucket by bucket.
//
// Invariants: counts[i] is the number of observations v with BOUNDS[i-1] < v <= BOUNDS[i]
// (non-cumulative; counts[BOUNDS.length] holds everything above the largest bound); observe() is a
// short linear scan with no allocation; counts never decrease.

/** Upper bounds in seconds: 100 µs to one hour, roughly 1-2.5-5 per decade. */
export const DURATION_BUCKETS: readonly number[] = Object.freeze([
  0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5,
  1, 2.5, 5, 10, 30, 60, 300, 900, 1800, 3600,
]);

export interface HistogramSnapshot {
  /** Non-cumulative count per bucket of DURATION_BUCKETS, plus one for +Inf: length DURATION_BUCKETS.length + 1. */
  readonly counts: readonly number[];
  /** Sum of the observed values, in seconds. */
  readonly sum: number;
}

export class FixedHistogram {
  readonly #counts: number[] = new Array<number>(DURATION_BUCKETS.length + 1).fill(0);
  #sum = 0;

  observe(seconds: number): void {
    let i = 0;
    const n = DURATION_BUCKETS.length;
    while (i < n && seconds > DURATION_BUCKETS[i]!) i++;
    this.#counts[i]!++;
    this.#sum += seconds;
  }

  snapshot(): HistogramSnapshot {
    return { counts: this.#counts.slice(), sum: this.#sum };
  }
}

export function emptyHistogram(): HistogramSnapshot {
  return { counts: new Array<number>(DURATION_BUCKETS.length + 1).fill(0), sum: 0 };
}
