// LruList: recency order for entries that carry their own links (no node allocation, O(1) moves).
// The owner keeps its own map for lookup; this list only says which entry was used least recently.
// Invariant: an entry is in at most one list; head is the most recently used, tail the least.

export interface LruLinks<E> {
  /** Toward the head (more recently used). */
  newer: E | undefined;
  /** Toward the tail (less recently used). */
  older: E | undefined;
}

export class LruList<E extends LruLinks<E>> {
  #head: E | undefined;
  #tail: E | undefined;

  /** The least recently used entry. */
  get tail(): E | undefined {
    return this.#tail;
  }

  /** Mark `e`, already in the list, as just used. */
  touch(e: E): void {
    if (this.#head === e) return;
    this.unlink(e);
    this.pushHead(e);
  }

  pushHead(e: E): void {
    e.newer = undefined;
    e.older = this.#head;
    if (this.#head !== undefined) this.#head.newer = e;
    this.#head = e;
    this.#tail ??= e;
  }

  unlink(e: E): void {
    if (e.newer !== undefined) e.newer.older = e.older;
    else this.#head = e.older;
    if (e.older !== undefined) e.older.newer = e.newer;
    else this.#tail = e.newer;
    e.newer = undefined;
    e.older = undefined;
  }

  clear(): void {
    this.#head = undefined;
    this.#tail = undefined;
  }
}
