// TargetsReporter: when to send the listener's `targets` IPC message. A passive state change (an
// ejection, a target back, a panic episode starting or ending) sends one soon; a burst of changes
// becomes one message per minIntervalMs; while a target is ejected, one more goes out when its
// ejection runs out (the state changes then without any event). Owns one unref'd timer.
export const TARGETS_REPORT_MIN_MS = 250;

export class TargetsReporter {
  readonly #send: () => void;
  readonly #nextExpiry: () => number | undefined;
  readonly #minIntervalMs: number;
  #timer: NodeJS.Timeout | null = null;
  #dueAt = Infinity;
  #last = 0;
  #closed = false;

  /** `nextExpiry`: epoch ms when the next ejection runs out, if any. */
  constructor(send: () => void, nextExpiry: () => number | undefined, minIntervalMs = TARGETS_REPORT_MIN_MS) {
    this.#send = send;
    this.#nextExpiry = nextExpiry;
    this.#minIntervalMs = minIntervalMs;
  }

  changed(): void {
    this.#schedule(Math.max(Date.now(), this.#last + this.#minIntervalMs));
  }

  close(): void {
    this.#closed = true;
    if (this.#timer !== null) clearTimeout(this.#timer);
    this.#timer = null;
  }

  #schedule(at: number): void {
    if (this.#closed || (this.#timer !== null && at >= this.#dueAt)) return;
    if (this.#timer !== null) clearTimeout(this.#timer);
    this.#dueAt = at;
    this.#timer = setTimeout(onDue, Math.max(0, at - Date.now()), this);
    this.#timer.unref();
  }

  /** @internal */
  fire(): void {
    // A timer counts from the event loop's cached time, which can be a few ms old on a busy
    // process: it may fire before `dueAt`. Wait out the rest, or the minimum interval is not one.
    const early = this.#dueAt - Date.now();
    if (early > 0 && this.#dueAt !== Infinity) {
      this.#timer = setTimeout(onDue, early, this);
      this.#timer.unref();
      return;
    }
    this.#timer = null;
    this.#dueAt = Infinity;
    this.#last = Date.now();
    this.#send();
    const next = this.#nextExpiry();
    if (next !== undefined) this.#schedule(Math.max(next + 1, this.#last + this.#minIntervalMs));
  }
}

function onDue(r: TargetsReporter): void {
  r.fire();
}
