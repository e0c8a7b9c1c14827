// Inspector: a client's first bytes, read before routing when the app asks for it — a PROXY header
// (acceptProxyProtocol: parsed and stripped; its source becomes the client) and, in TLS passthrough,
// the ClientHello (SNI and ALPN pick the route; its bytes stay, to be forwarded). Plain bytes in, a
// step out: Session feeds it a socket's chunks, NativeSession what it reads from the fd the engine
// watched for it. Whatever the split of the bytes, it copies O(bytes received) and fails on the
// first byte that cannot start a header / hello.
//
// feed() answers with a step; its results are in fields, so a connection allocates nothing per step:
//   MORE: nothing decided yet, feed more
//   FAILED: `code` says why (ERR_PROXY_HEADER_INVALID, ERR_NOT_TLS …): the connection is refused
//   HEADER: a PROXY header was just read (`header`): the caller may check the real client before
//     going on with feed(EMPTY)
//   DONE: `rest` is what to send upstream first (passthrough: the hello and what followed; else what
//     followed the header; null: nothing), with `sni` and `alpn` (passthrough only)
import { parseProxyHeader, type ProxyAddress } from './proxy-protocol.ts';
import { parseClientHello } from './tls/client-hello.ts';

export const MORE = 0;
export const FAILED = 1;
export const HEADER = 2;
export const DONE = 3;
export type InspectStep = typeof MORE | typeof FAILED | typeof HEADER | typeof DONE;

export const EMPTY = Buffer.alloc(0);
export const NO_ALPN: readonly string[] = Object.freeze([]);
const TLS_RECORD_HEADER = 5;

export class Inspector {
  /** Whether a ClientHello is read after the header (TLS passthrough). */
  readonly #hello: boolean;
  #proxyDone: boolean;
  /** Bytes [#start, #end) of #buf are received and not yet consumed. */
  #buf: Buffer | null = null;
  #start = 0;
  #end = 0;
  /** Don't re-parse the ClientHello before this many bytes (its first record) are in. */
  #helloWant = 0;
  code: string | undefined;
  header: ProxyAddress | undefined;
  rest: Buffer | null = null;
  sni: string | undefined;
  alpn: readonly string[] = NO_ALPN;

  /** `proxy`: a PROXY header comes first; `hello`: then a ClientHello (passthrough). */
  constructor(proxy: boolean, hello: boolean) {
    this.#proxyDone = !proxy;
    this.#hello = hello;
  }

  feed(chunk: Buffer): InspectStep {
    const buf = this.#append(chunk);
    if (!this.#proxyDone) {
      const r = parseProxyHeader(buf);
      if (r.status === 'need-more') return MORE;
      if (r.status === 'error') return this.#failed(r.code);
      this.#proxyDone = true;
      this.header = r.header;
      this.#start += r.length;
      return HEADER;
    }
    const rest = this.#buf === null ? EMPTY : this.#buf.subarray(this.#start, this.#end);
    if (!this.#hello) return this.#done(rest.length > 0 ? rest : null);
    // The parser is O(bytes): skip calls that cannot complete the first record.
    if (rest.length === 0 || rest.length < this.#helloWant) return MORE;
    const hello = parseClientHello(rest);
    if (hello.status === 'need-more') {
      // The parser saw no fault in the record header, so its length is the next point worth a look.
      if (rest.length >= TLS_RECORD_HEADER) this.#helloWant = TLS_RECORD_HEADER + rest.readUInt16BE(3);
      return MORE;
    }
    if (hello.status === 'error') return this.#failed(hello.code);
    this.sni = hello.sni;
    this.alpn = hello.alpn;
    return this.#done(rest);
  }

  #failed(code: string): InspectStep {
    this.code = code;
    this.#buf = null;
    return FAILED;
  }

  #done(rest: Buffer | null): InspectStep {
    this.rest = rest;
    this.#buf = null;
    return DONE;
  }

  /** Adds a chunk; returns the unconsumed bytes. Keeps the chunk itself when nothing is held; grows by doubling. */
  #append(chunk: Buffer): Buffer {
    const held = this.#buf;
    const used = this.#end - this.#start;
    if (held === null || used === 0) {
      // The common cases: everything in one chunk, or the PROXY header alone in the first one.
      if (chunk.length === 0 && held !== null) return held.subarray(this.#start, this.#end);
      this.#buf = chunk;
      this.#start = 0;
      this.#end = chunk.length;
      return chunk;
    }
    if (this.#end + chunk.length <= held.length) {
      // Spare room exists only in buffers allocated below, never in a received chunk.
      chunk.copy(held, this.#end);
    } else {
      const grown = Buffer.allocUnsafe(Math.max(2 * (used + chunk.length), 512));
      held.copy(grown, 0, this.#start, this.#end);
      chunk.copy(grown, used);
      this.#buf = grown;
      this.#start = 0;
      this.#end = used;
    }
    this.#end += chunk.length;
    return this.#buf!.subarray(this.#start, this.#end);
  }
}
