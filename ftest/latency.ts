// LatencyHistogram: durations recorded at microsecond resolution in an HDR histogram
// (3 significant digits), reported as milliseconds.

import { build, type Histogram } from 'hdr-histogram-js';

/** Milliseconds. `p999` is the 99.9th percentile (a key jq can read without quoting). */
export interface Percentiles {
  readonly count: number;
  readonly p50: number;
  readonly p90: number;
  readonly p99: number;
  readonly p999: number;
  readonly max: number;
}

/** One hour in µs; autoResize covers anything longer rather than throwing. */
const HIGHEST_US = 3_600_000_000;

export class LatencyHistogram {
  readonly #histogram: Histogram = build({
    lowestDiscernibleValue: 1,
    highestTrackableValue: HIGHEST_US,
    numberOfSignificantValueDigits: 3,
    autoResize: true,
  });

  record(ms: number): void {
    this.#histogram.recordValue(Math.max(1, Math.round(ms * 1000)));
  }

  percentiles(): Percentiles {
    const h = this.#histogram;
    if (h.totalCount === 0) return { count: 0, p50: 0, p90: 0, p99: 0, p999: 0, max: 0 };
    // Percentiles come back as the top of their bucket, which can sit above the true max.
    const at = (percentile: number) => Math.min(h.getValueAtPercentile(percentile), h.maxValue) / 1000;
    return { count: h.totalCount, p50: at(50), p90: at(90), p99: at(99), p999: at(99.9), max: h.maxValue / 1000 };
  }
}
