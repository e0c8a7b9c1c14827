// PROXY protocol v1 and v2 (haproxy doc/proxy-protocol.txt): parsing the header a trusted load balancer
// puts in front of a client's bytes. Building the header we put in front of ours for a target is
// build-proxy-header.ts (re-exported here); address text ⇄ bytes is ip-address.ts.
//
// Invariants:
// - parseProxyHeader is pure, stateless and incremental like parseClientHello: the listener re-calls it
//   with the whole growing buffer. It never throws and each call is O(header length).
// - Decides as early as the bytes allow: a byte that breaks either signature is ERR_PROXY_HEADER_MISSING
//   at once (the port expects a header and must not guess, spec §2); a bad version, command, family or
//   length is ERR_PROXY_HEADER_INVALID as soon as its byte arrives.
// - 'ok' only for a complete header: a v2 header is never accepted before all 16 + length bytes are
//   there, a v1 line never before its CRLF. `length` is exactly the bytes to strip.
// - v2 families and transports we do not carry (UDP, AF_UNIX, UNSPEC) fall back to 'unknown', as the spec
//   allows; their TLVs are still decoded when the address block's size is known.
import { ByteReader } from './byte-reader.ts';
import { formatAddress, parseAddress } from './ip-address.ts';
import {
  ADDRESS_BLOCK_SIZE, AF_INET, AF_UNIX, AF_UNSPEC, COMMAND_LOCAL, COMMAND_PROXY, TRANSPORT_DGRAM, TRANSPORT_STREAM, TRANSPORT_UNSPEC, V2_HEADER_SIZE, V2_SIGNATURE,
} from './proxy-protocol-wire.ts';

export { buildProxyHeaderV1, buildProxyHeaderV2, type ProxyEndpoint } from './build-proxy-header.ts';

export interface ProxyAddress {
  family: 'tcp4' | 'tcp6' | 'unknown' | 'local';
  sourceAddress?: string;
  sourcePort?: number;
  destinationAddress?: string;
  destinationPort?: number;
  tlvs?: { type: number; value: Uint8Array }[];
}

export type ProxyHeaderErrorCode = 'ERR_PROXY_HEADER_INVALID' | 'ERR_PROXY_HEADER_MISSING';

export type ProxyHeaderResult =
  | { status: 'need-more' }
  | { status: 'ok'; header: ProxyAddress; length: number }
  | { status: 'error'; code: ProxyHeaderErrorCode; message: string };

type ProxyHeaderError = Extract<ProxyHeaderResult, { status: 'error' }>;

/** Longest v1 line including CRLF ("PROXY UNKNOWN" + two IPv6 addresses and ports, spec §2.1). */
export const MAX_PROXY_V1_LENGTH = 107;
/** Cap on the v2 length field (addresses + TLVs). The spec allows 65535; real senders stay far below. */
export const MAX_PROXY_V2_LENGTH = 4096;

const V1_SIGNATURE = Uint8Array.from('PROXY ', (c) => c.charCodeAt(0));
const CR = 0x0d;
const LF = 0x0a;
const V1_PROTOCOLS = ['TCP4 ', 'TCP6 ', 'UNKNOWN'];

const NEED_MORE: ProxyHeaderResult = Object.freeze({ status: 'need-more' });

/** Parses a v1 or v2 PROXY header at the start of buf (the caller enforces the timeout while 'need-more'). */
export function parseProxyHeader(buf: Uint8Array): ProxyHeaderResult {
  if (buf.length === 0) return NEED_MORE;
  return buf[0] === V2_SIGNATURE[0] ? parseV2(buf) : parseV1(buf);
}

// ---- v1 ---------------------------------------------------------------------------------------------

function parseV1(buf: Uint8Array): ProxyHeaderResult {
  const end = Math.min(buf.length, MAX_PROXY_V1_LENGTH);
  for (let i = 0; i < end; i++) {
    const c = buf[i]!;
    if (i < V1_SIGNATURE.length) {
      if (c !== V1_SIGNATURE[i]) return missing(buf, i);
      continue;
    }
    if (c === LF) return invalid(`v1 line has a LF without CR at offset ${i}`);
    if (c !== CR) continue;
    if (i + 1 >= MAX_PROXY_V1_LENGTH) break;
    if (i + 1 >= buf.length) return checkV1Prefix(buf, i);
    if (buf[i + 1] !== LF) return invalid(`v1 line has a CR not followed by LF at offset ${i}`);
    return parseV1Line(ascii(buf, V1_SIGNATURE.length, i), i + 2);
  }
  if (buf.length >= MAX_PROXY_V1_LENGTH) return invalid(`v1 line has no CRLF within its first ${MAX_PROXY_V1_LENGTH} bytes`);
  return checkV1Prefix(buf, buf.length);
}

/** Early rejection of an incomplete v1 line that cannot become valid: an unknown protocol word or a
 *  byte no TCP4/TCP6 line can hold. (Anything may follow UNKNOWN: the receiver ignores it.) */
function checkV1Prefix(buf: Uint8Array, end: number): ProxyHeaderResult {
  const rest = ascii(buf, V1_SIGNATURE.length, end);
  const word = V1_PROTOCOLS.find((p) => p.startsWith(rest.slice(0, p.length)));
  if (word === undefined) return invalid(`v1 protocol ${JSON.stringify(rest.split(' ')[0])} is not TCP4, TCP6 or UNKNOWN`);
  if (word !== 'UNKNOWN' && !/^[0-9A-Fa-f.: ]*$/.test(rest.slice(word.length))) return invalid(`v1 line ${JSON.stringify(rest)} has a character that is not part of an address or port`);
  return NEED_MORE;
}

function parseV1Line(line: string, length: number): ProxyHeaderResult {
  if (line === 'UNKNOWN' || line.startsWith('UNKNOWN ')) return { status: 'ok', header: { family: 'unknown' }, length };
  const fields = line.split(' ');
  const [protocol, src, dst, srcPort, dstPort] = fields;
  const shown = JSON.stringify(`PROXY ${line}`);
  if (protocol !== 'TCP4' && protocol !== 'TCP6') return invalid(`v1 line ${shown}: protocol is not TCP4, TCP6 or UNKNOWN`);
  if (fields.length !== 5) return invalid(`v1 line ${shown}: expected 5 fields separated by single spaces, got ${fields.length}`);
  const family = protocol === 'TCP4' ? 4 : 6;
  const source = parseAddress(src!, family);
  const destination = parseAddress(dst!, family);
  if (!source || !destination) return invalid(`v1 line ${shown}: ${source ? 'destination' : 'source'} address is not a canonical IPv${family} address`);
  const sourcePort = parsePort(srcPort!);
  const destinationPort = parsePort(dstPort!);
  if (sourcePort < 0 || destinationPort < 0) return invalid(`v1 line ${shown}: ${sourcePort < 0 ? 'source' : 'destination'} port is not 0..65535 without leading zeros`);
  return {
    status: 'ok',
    header: { family: family === 4 ? 'tcp4' : 'tcp6', sourceAddress: formatAddress(source), sourcePort, destinationAddress: formatAddress(destination), destinationPort },
    length,
  };
}

function parsePort(text: string): number {
  if (!/^(0|[1-9][0-9]{0,4})$/.test(text)) return -1;
  const port = Number(text);
  return port <= 65535 ? port : -1;
}

// ---- v2 ---------------------------------------------------------------------------------------------

function parseV2(buf: Uint8Array): ProxyHeaderResult {
  const r = new ByteReader(buf);
  for (let i = 0; i < V2_SIGNATURE.length; i++) {
    const c = r.u8();
    if (c < 0) return NEED_MORE;
    if (c !== V2_SIGNATURE[i]) return missing(buf, i);
  }
  const versionCommand = r.u8();
  if (versionCommand < 0) return NEED_MORE;
  const command = versionCommand & 0x0f;
  if (versionCommand >> 4 !== 2) return invalid(`v2 version is ${versionCommand >> 4}, expected 2`);
  if (command !== COMMAND_LOCAL && command !== COMMAND_PROXY) return invalid(`v2 command is ${command}, expected 0 (LOCAL) or 1 (PROXY)`);
  const familyTransport = r.u8();
  if (familyTransport < 0) return NEED_MORE;
  const family = familyTransport >> 4;
  const transport = familyTransport & 0x0f;
  if (family > AF_UNIX) return invalid(`v2 address family is ${family}, expected 0..3`);
  if (transport > TRANSPORT_DGRAM) return invalid(`v2 transport is ${transport}, expected 0..2`);
  const length = r.u16();
  if (length < 0) return NEED_MORE;
  if (length > MAX_PROXY_V2_LENGTH) return invalid(`v2 header declares ${length} bytes of addresses and TLVs, the limit is ${MAX_PROXY_V2_LENGTH}`);
  // UNSPEC in either nibble: the layout of the block is unknown, so neither addresses nor TLVs are read.
  const addressSize = family === AF_UNSPEC || transport === TRANSPORT_UNSPEC ? undefined : ADDRESS_BLOCK_SIZE[family]!;
  if (command === COMMAND_PROXY && addressSize !== undefined && length < addressSize) {
    return invalid(`v2 header declares ${length} bytes, too few for the ${addressSize}-byte address block of family ${family}`);
  }
  const block = r.sub(length);
  if (!block) return NEED_MORE;
  const total = V2_HEADER_SIZE + length;

  // LOCAL: the receiver must use the real endpoints and discard the block (spec §2.2).
  if (command === COMMAND_LOCAL) return { status: 'ok', header: { family: 'local' }, length: total };
  if (addressSize === undefined) return { status: 'ok', header: { family: 'unknown', tlvs: [] }, length: total };
  const addresses = block.sub(addressSize)!;
  const tlvs = parseTlvs(block);
  if (!Array.isArray(tlvs)) return tlvs;
  if (transport !== TRANSPORT_STREAM || family === AF_UNIX) return { status: 'ok', header: { family: 'unknown', tlvs }, length: total };

  const size = family === AF_INET ? 4 : 16;
  const source = addresses.bytes(size)!;
  const destination = addresses.bytes(size)!;
  const header: ProxyAddress = {
    family: family === AF_INET ? 'tcp4' : 'tcp6',
    sourceAddress: formatAddress(source),
    sourcePort: addresses.u16(),
    destinationAddress: formatAddress(destination),
    destinationPort: addresses.u16(),
    tlvs,
  };
  return { status: 'ok', header, length: total };
}

/** TLVs fill the rest of the block exactly; values are copied so the header does not pin the read buffer. */
function parseTlvs(r: ByteReader): { type: number; value: Uint8Array }[] | ProxyHeaderError {
  const tlvs: { type: number; value: Uint8Array }[] = [];
  while (r.remaining > 0) {
    const type = r.u8();
    const length = r.u16();
    const value = length < 0 ? undefined : r.bytes(length);
    if (type < 0 || !value) return invalid(`v2 TLV #${tlvs.length + 1} overruns the header`);
    tlvs.push({ type, value: value.slice() });
  }
  return tlvs;
}

// ---- helpers ------------------------------------------------------------------------------------

function missing(buf: Uint8Array, at: number): ProxyHeaderError {
  const shown = JSON.stringify(ascii(buf, 0, Math.min(buf.length, 16)));
  return {
    status: 'error',
    code: 'ERR_PROXY_HEADER_MISSING',
    message: `Expected a PROXY protocol header but the connection starts with ${shown} (mismatch at byte ${at}); is the sender configured to send one?`,
  };
}

function invalid(what: string): ProxyHeaderError {
  return { status: 'error', code: 'ERR_PROXY_HEADER_INVALID', message: `Invalid PROXY protocol header: ${what}` };
}

function ascii(buf: Uint8Array, from: number, to: number): string {
  let s = '';
  for (let i = from; i < to; i++) s += String.fromCharCode(buf[i]!);
  return s;
}

