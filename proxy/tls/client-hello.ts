// ClientHello peek: finds the SNI and ALPN offer in the first bytes a client sends, without consuming
// them (in passthrough the same bytes go on to the target untouched).
//
// Invariants:
// - Pure and stateless: the listener re-calls parseClientHello with the whole growing buffer each time
//   bytes arrive; the answer depends only on those bytes, so there is no parser state to get out of sync.
// - Never throws and never loops on input: every read goes through ByteReader, which is bounds-checked and
//   always advances, so each call is O(buffer length).
// - Decides as early as the bytes allow: a first byte other than 0x16 is ERR_NOT_TLS at once, and a
//   declared record or handshake length above maxSize is ERR_CLIENT_HELLO_TOO_LARGE before the bytes come.
// - 'ok' only once every record carrying the hello is complete; helloLength ≤ buf.length.
// - The handshake message may be fragmented over consecutive handshake records (RFC 8446 §5.1); the
//   hello itself is parsed only once fully reassembled.
// - A hello the target would reject must not be routed on a guess: duplicate extensions (RFC 8446 §4.2),
//   two host_names, malformed SNI/ALPN lists and invalid hostnames are errors, not "no SNI".
// Model: inetaf/tcpproxy cmd/tlsrouter/sni.go (bounds-checked reader), Envoy tls_inspector
// (incremental, max_client_hello_size).
import { ByteReader } from '../byte-reader.ts';

export type ClientHelloErrorCode = 'ERR_NOT_TLS' | 'ERR_CLIENT_HELLO_TOO_LARGE' | 'ERR_CLIENT_HELLO_INVALID' | 'ERR_SNI_INVALID';

export type ClientHelloResult =
  | { status: 'need-more' }
  | { status: 'ok'; sni: string | undefined; alpn: string[]; helloLength: number }
  | { status: 'error'; code: ClientHelloErrorCode; message: string };

type ClientHelloError = Extract<ClientHelloResult, { status: 'error' }>;

/** Default cap on the bytes of the records carrying the hello (Envoy's max_client_hello_size is 64 KiB too). */
export const DEFAULT_MAX_CLIENT_HELLO_SIZE = 64 * 1024;

const CONTENT_HANDSHAKE = 0x16;
const HANDSHAKE_CLIENT_HELLO = 0x01;
const RECORD_HEADER_SIZE = 5;
const HANDSHAKE_HEADER_SIZE = 4;
const MAX_RECORD_PAYLOAD = 16384; // 2^14, RFC 8446 §5.1
const EXT_SERVER_NAME = 0;
const EXT_ALPN = 16;
const NAME_TYPE_HOST_NAME = 0;
const MAX_HOSTNAME_LENGTH = 253;
const MAX_LABEL_LENGTH = 63;

const NEED_MORE: ClientHelloResult = Object.freeze({ status: 'need-more' });

/** True if a connection starting with this byte may be TLS (a handshake record). */
export function looksLikeTls(firstByte: number): boolean {
  return firstByte === CONTENT_HANDSHAKE;
}

/**
 * Parses the ClientHello at the start of buf. 'need-more' until the records carrying it are complete;
 * the caller enforces the handshake timeout. maxSize caps those records' total bytes (non-positive or
 * NaN means the default; Infinity means no cap).
 */
export function parseClientHello(buf: Uint8Array, maxSize: number = DEFAULT_MAX_CLIENT_HELLO_SIZE): ClientHelloResult {
  const limit = maxSize > 0 ? maxSize : DEFAULT_MAX_CLIENT_HELLO_SIZE;
  const r = new ByteReader(buf);
  const fragments: Uint8Array[] = [];
  let have = 0; // handshake bytes seen so far
  let want = -1; // handshake header + body, once the header is known

  // 1. Walk the records, checking each header byte as soon as it arrives.
  for (;;) {
    const recordStart = r.offset;
    const first = recordStart === 0;
    const type = r.u8();
    if (type < 0) return NEED_MORE;
    if (type !== CONTENT_HANDSHAKE) {
      return first
        ? error('ERR_NOT_TLS', `Connection does not start with a TLS handshake record: first byte is ${hex(type)}, expected 0x16`)
        : error('ERR_CLIENT_HELLO_INVALID', `Record of type ${hex(type)} at offset ${recordStart} interrupts the ClientHello`);
    }
    const major = r.u8();
    if (major < 0) return NEED_MORE;
    if (major !== 3) return badRecordVersion(first, major, -1);
    const minor = r.u8();
    if (minor < 0) return NEED_MORE;
    if (minor > 4) return badRecordVersion(first, major, minor);
    const length = r.u16();
    if (length < 0) return NEED_MORE;
    if (length === 0 || length > MAX_RECORD_PAYLOAD) {
      return error('ERR_CLIENT_HELLO_INVALID', `Handshake record at offset ${recordStart} has length ${length}, expected 1..${MAX_RECORD_PAYLOAD}`);
    }
    if (r.offset + length > limit) return tooLarge(limit, `a record ending at byte ${r.offset + length}`);

    // 2. Take what has arrived of this record's fragment and check the handshake header early.
    const fragment = r.bytes(Math.min(length, r.remaining))!;
    fragments.push(fragment);
    have += fragment.length;
    if (have >= 1 && handshakeByte(fragments, 0) !== HANDSHAKE_CLIENT_HELLO) {
      return error('ERR_CLIENT_HELLO_INVALID', `First handshake message has type ${hex(handshakeByte(fragments, 0))}, expected ClientHello (0x01)`);
    }
    if (want < 0 && have >= HANDSHAKE_HEADER_SIZE) {
      want = HANDSHAKE_HEADER_SIZE + ((handshakeByte(fragments, 1) << 16) | (handshakeByte(fragments, 2) << 8) | handshakeByte(fragments, 3));
      // Smallest possible wire size: the handshake bytes plus one record header per 2^14 bytes.
      const minimum = want + RECORD_HEADER_SIZE * Math.ceil(want / MAX_RECORD_PAYLOAD);
      if (minimum > limit) return tooLarge(limit, `a ${want - HANDSHAKE_HEADER_SIZE}-byte ClientHello`);
    }
    if (fragment.length < length) return NEED_MORE;
    if (want >= 0 && have >= want) break;
  }

  // 3. Reassemble and parse the hello body. Bytes after it in the last record are left alone.
  const body = sliceHandshake(fragments, HANDSHAKE_HEADER_SIZE, want);
  const parsed = parseHelloBody(body);
  if ('status' in parsed) return parsed;
  return { status: 'ok', sni: parsed.sni, alpn: parsed.alpn, helloLength: r.offset };
}

function parseHelloBody(body: Uint8Array): { sni: string | undefined; alpn: string[] } | ClientHelloError {
  const r = new ByteReader(body);
  const version = r.u16();
  if (version < 0 || version >> 8 !== 3) return invalid(`legacy_version is ${version < 0 ? 'missing' : hex(version, 4)}, expected 0x03xx`);
  if (!r.skip(32)) return invalid('random is truncated');
  const sessionId = r.vec8();
  if (!sessionId || sessionId.remaining > 32) return invalid('legacy_session_id is malformed');
  const suites = r.vec16();
  if (!suites || suites.remaining === 0 || suites.remaining % 2 !== 0) return invalid('cipher_suites is malformed');
  const compression = r.vec8();
  if (!compression || compression.remaining === 0) return invalid('legacy_compression_methods is malformed');
  // A TLS 1.2 hello may stop here: no extensions at all.
  if (r.remaining === 0) return { sni: undefined, alpn: [] };
  const extensions = r.vec16();
  if (!extensions || r.remaining !== 0) return invalid('extensions block does not match the hello length');

  let sni: string | undefined;
  let alpn: string[] = [];
  const seen = new Set<number>();
  while (extensions.remaining > 0) {
    const type = extensions.u16();
    const data = extensions.vec16();
    if (type < 0 || !data) return invalid('an extension overruns the extensions block');
    if (isGrease(type)) continue;
    if (seen.has(type)) return invalid(`extension ${type} appears twice`);
    seen.add(type);
    if (type === EXT_SERVER_NAME) {
      const name = parseServerName(data);
      if (typeof name === 'object') return name;
      sni = name;
    } else if (type === EXT_ALPN) {
      const protocols = parseAlpn(data);
      if (!Array.isArray(protocols)) return protocols;
      alpn = protocols;
    }
  }
  return { sni, alpn };
}

/** RFC 6066 §3: a ServerNameList with at most one host_name; other name types are skipped. */
function parseServerName(data: ByteReader): string | undefined | ClientHelloError {
  const list = data.vec16();
  if (!list || data.remaining !== 0 || list.remaining === 0) return sniError('server_name extension is malformed');
  let host: string | undefined;
  while (list.remaining > 0) {
    const nameType = list.u8();
    const name = list.vec16();
    if (nameType < 0 || !name) return sniError('server_name list entry overruns the extension');
    if (nameType !== NAME_TYPE_HOST_NAME) continue;
    if (host !== undefined) return sniError('server_name extension has more than one host_name');
    const checked = checkHostname(name.bytes(name.remaining)!);
    if (typeof checked === 'object') return checked;
    host = checked;
  }
  return host;
}

/** The host name lower-cased, or why it is not a hostname (RFC 1123 labels; '_' tolerated as clients send it). */
function checkHostname(bytes: Uint8Array): string | ClientHelloError {
  const shown = JSON.stringify(latin1(bytes.subarray(0, 80))) + (bytes.length > 80 ? '…' : '');
  if (bytes.length === 0) return sniError('SNI host name is empty');
  if (bytes.length > MAX_HOSTNAME_LENGTH) return sniError(`SNI host name ${shown} is ${bytes.length} bytes long, the maximum is ${MAX_HOSTNAME_LENGTH}`);
  let out = '';
  let labelStart = 0;
  for (let i = 0; i <= bytes.length; i++) {
    const c = i < bytes.length ? bytes[i]! : 0x2e; // a virtual '.' closes the last label
    if (c === 0x2e) {
      const label = i - labelStart;
      if (label === 0 || label > MAX_LABEL_LENGTH) {
        return sniError(`SNI host name ${shown} has a label of ${label} bytes at offset ${labelStart}, expected 1..${MAX_LABEL_LENGTH}`);
      }
      if (bytes[labelStart] === 0x2d || bytes[i - 1] === 0x2d) return sniError(`SNI host name ${shown} has a label starting or ending with '-'`);
      labelStart = i + 1;
    } else if (!isHostnameByte(c)) {
      return sniError(`SNI host name ${shown} has byte ${hex(c)} at offset ${i}; only letters, digits, '-', '_' and '.' are allowed`);
    }
    if (i < bytes.length) out += String.fromCharCode(c >= 0x41 && c <= 0x5a ? c + 0x20 : c);
  }
  return out;
}

function isHostnameByte(c: number): boolean {
  return (c >= 0x61 && c <= 0x7a) || (c >= 0x41 && c <= 0x5a) || (c >= 0x30 && c <= 0x39) || c === 0x2d || c === 0x5f;
}

/** RFC 7301 §3.1: a non-empty list of non-empty protocol names; GREASE names (RFC 8701) are dropped. */
function parseAlpn(data: ByteReader): string[] | ClientHelloError {
  const list = data.vec16();
  if (!list || data.remaining !== 0 || list.remaining === 0) return invalid('ALPN extension is malformed');
  const out: string[] = [];
  while (list.remaining > 0) {
    const name = list.vec8();
    if (!name || name.remaining === 0) return invalid('ALPN protocol name is empty or overruns the list');
    const bytes = name.bytes(name.remaining)!;
    if (bytes.length === 2 && isGrease((bytes[0]! << 8) | bytes[1]!)) continue;
    out.push(latin1(bytes));
  }
  return out;
}

/** RFC 8701 GREASE values: 0x0A0A, 0x1A1A, … 0xFAFA. */
function isGrease(value: number): boolean {
  return (value & 0x0f0f) === 0x0a0a && value >> 8 === (value & 0xff);
}

/** Byte i of the handshake stream spread over fragments (only called with i < have). */
function handshakeByte(fragments: readonly Uint8Array[], i: number): number {
  for (const f of fragments) {
    if (i < f.length) return f[i]!;
    i -= f.length;
  }
  return -1;
}

/** Bytes [from, to) of the handshake stream; no copy when one fragment holds them. */
function sliceHandshake(fragments: readonly Uint8Array[], from: number, to: number): Uint8Array {
  const only = fragments[0]!;
  if (fragments.length === 1 || only.length >= to) return only.subarray(from, to);
  const out = new Uint8Array(to - from);
  let at = 0; // stream offset of the current fragment
  for (const f of fragments) {
    const start = Math.max(from - at, 0);
    const end = Math.min(to - at, f.length);
    if (end > start) out.set(f.subarray(start, end), at + start - from);
    at += f.length;
    if (at >= to) break;
  }
  return out;
}

function badRecordVersion(first: boolean, major: number, minor: number): ClientHelloError {
  const version = minor < 0 ? hex(major) + '..' : hex((major << 8) | minor, 4);
  return first
    ? error('ERR_NOT_TLS', `First record has version ${version}, expected 0x0300..0x0304: not TLS`)
    : error('ERR_CLIENT_HELLO_INVALID', `A later record has version ${version}, expected 0x0300..0x0304`);
}

function tooLarge(limit: number, what: string): ClientHelloError {
  return error('ERR_CLIENT_HELLO_TOO_LARGE', `ClientHello exceeds the ${limit}-byte limit (${what}); raise the limit if such clients are expected`);
}

function invalid(what: string): ClientHelloError {
  return error('ERR_CLIENT_HELLO_INVALID', `Malformed ClientHello: ${what}`);
}

function sniError(what: string): ClientHelloError {
  return error('ERR_SNI_INVALID', what);
}

function error(code: ClientHelloErrorCode, message: string): ClientHelloError {
  return { status: 'error', code, message };
}

function hex(n: number, digits = 2): string {
  return '0x' + n.toString(16).padStart(digits, '0');
}

function latin1(bytes: Uint8Array): string {
  let s = '';
  for (const b of bytes) s += String.fromCharCode(b);
  return s;
}

