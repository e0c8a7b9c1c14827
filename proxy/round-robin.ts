// RoundRobin: the target cursor of one pool. One instance per pool per listener process, shared by
// all the app's ports, so rotation is exact across ports. Pure: no I/O, no allocation per pick.

export class RoundRobin<T> {
  readonly items: readonly T[];
  #next = 0;

  constructor(items: readonly T[]) {
    this.items = items;
  }

  get size(): number {
    return this.items.length;
  }

  /** Index of the next item, advancing the cursor. -1 when the pool is empty. */
  nextIndex(): number {
    const n = this.items.length;
    if (n === 0) return -1;
    const i = this.#next;
    this.#next = i + 1 === n ? 0 : i + 1;
    return i;
  }

  /** The next item, or undefined for an empty pool. */
  pick(): T | undefined {
    const i = this.nextIndex();
    return i < 0 ? undefined : this.items[i];
  }
}
