// TokenBucket: `rate` tokens a second, holding at most `burst`; starts full. take(n) grants up to n
// whole tokens at once (a block, for leases) and never more than the bucket holds. The clock is
// injected so tests step time by hand. Pure apart from the clock.

export class TokenBucket {
  readonly rate: number;
  readonly burst: number;
  readonly #now: () => number;
  #tokens: number;
  #at: number;

  constructor(rate: number, burst: number, now: () => number = Date.now) {
    this.rate = rate;
    this.burst = burst;
    this.#now = now;
    this.#tokens = burst;
    this.#at = now();
  }

  #refill(): void {
    const t = this.#now();
    if (t > this.#at) {
      this.#tokens = Math.min(this.burst, this.#tokens + ((t - this.#at) * this.rate) / 1000);
      this.#at = t;
    }
  }

  /** Takes up to `n` whole tokens; returns how many it took (0 = rate-limited). */
  take(n: number): number {
    this.#refill();
    const got = Math.min(n, Math.floor(this.#tokens));
    this.#tokens -= got;
    return got;
  }

  /** Puts back tokens taken and not used (never above burst). */
  give(n: number): void {
    this.#refill();
    this.#tokens = Math.min(this.burst, this.#tokens + n);
  }

  /** Tokens held now (fractional), for tests and expiry. */
  get tokens(): number {
    this.#refill();
    return this.#tokens;
  }

  /** Full again: an entry that is full and holds no leases carries no state worth keeping. */
  get full(): boolean {
    return this.tokens >= this.burst;
  }
}
