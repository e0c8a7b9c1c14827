// ByteReader: the only parsing primitive of the ClientHello and PROXY header parsers (after
// inetaf/tcpproxy's tlsrouter). A cursor over [start, end) of a byte array: reads past the end
// return -1 or undefined and do not move the cursor, and nothing here throws. Length-prefixed
// vectors and fixed-size blocks come back as sub-readers, so an inner length can never read
// outside its parent.

export class ByteReader {
  readonly #buf: Uint8Array;
  readonly #end: number;
  #pos: number;

  constructor(buf: Uint8Array, start = 0, end = buf.length) {
    this.#buf = buf;
    this.#pos = start;
    this.#end = end;
  }

  get offset(): number {
    return this.#pos;
  }

  get remaining(): number {
    return this.#end - this.#pos;
  }

  u8(): number {
    if (this.remaining < 1) return -1;
    return this.#buf[this.#pos++]!;
  }

  u16(): number {
    if (this.remaining < 2) return -1;
    const v = (this.#buf[this.#pos]! << 8) | this.#buf[this.#pos + 1]!;
    this.#pos += 2;
    return v;
  }

  skip(n: number): boolean {
    if (this.remaining < n) return false;
    this.#pos += n;
    return true;
  }

  bytes(n: number): Uint8Array | undefined {
    if (this.remaining < n) return undefined;
    const out = this.#buf.subarray(this.#pos, this.#pos + n);
    this.#pos += n;
    return out;
  }

  /** The next n bytes as a reader of their own. */
  sub(n: number): ByteReader | undefined {
    if (n < 0 || this.remaining < n) return undefined;
    const r = new ByteReader(this.#buf, this.#pos, this.#pos + n);
    this.#pos += n;
    return r;
  }

  /** A vector with a 1-byte length prefix (TLS `opaque x<0..255>`). */
  vec8(): ByteReader | undefined {
    return this.#vec(1);
  }

  /** A vector with a 2-byte length prefix (TLS `opaque x<0..2^16-1>`). */
  vec16(): ByteReader | undefined {
    return this.#vec(2);
  }

  #vec(prefix: 1 | 2): ByteReader | undefined {
    const start = this.#pos;
    const n = prefix === 1 ? this.u8() : this.u16();
    const sub = n < 0 ? undefined : this.sub(n);
    if (sub === undefined) this.#pos = start;
    return sub;
  }
}
