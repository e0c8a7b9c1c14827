// Building the PROXY protocol header we put in front of a client's bytes for a target (v1 line or
// v2 binary). Never throws on the hot path: endpoints that cannot be sent (invalid address text,
// port out of range) produce "PROXY UNKNOWN" / a v2 PROXY header with AF_UNSPEC, so the target falls
// back to the real connection's endpoints instead of the connection failing. IPv4-mapped IPv6 pairs
// go out as IPv4; a mixed pair as IPv6 with the IPv4 side mapped.
import { formatAddress, parseAddress, toIPv4, toIPv6 } from './ip-address.ts';
import { AF_INET, AF_INET6, COMMAND_PROXY, TRANSPORT_STREAM, V2_HEADER_SIZE, V2_SIGNATURE } from './proxy-protocol-wire.ts';

export interface ProxyEndpoint {
  address: string;
  port: number;
  family: 4 | 6;
}

/** "PROXY TCP4|TCP6 src dst sport dport\r\n", or "PROXY UNKNOWN\r\n" when the endpoints can't be sent. */
export function buildProxyHeaderV1(src: ProxyEndpoint, dst: ProxyEndpoint): Buffer {
  const pair = endpoints(src, dst);
  if (!pair) return Buffer.from('PROXY UNKNOWN\r\n', 'latin1');
  const [s, d] = pair;
  const protocol = s.bytes.length === 4 ? 'TCP4' : 'TCP6';
  return Buffer.from(`PROXY ${protocol} ${formatAddress(s.bytes)} ${formatAddress(d.bytes)} ${s.port} ${d.port}\r\n`, 'latin1');
}

/** v2 header, PROXY command, TCP over IPv4/IPv6, no TLVs; AF_UNSPEC with no addresses when they can't be sent. */
export function buildProxyHeaderV2(src: ProxyEndpoint, dst: ProxyEndpoint): Buffer {
  const pair = endpoints(src, dst);
  const size = pair ? 2 * pair[0].bytes.length + 4 : 0;
  const out = Buffer.alloc(V2_HEADER_SIZE + size);
  out.set(V2_SIGNATURE, 0);
  out[12] = 0x20 | COMMAND_PROXY;
  if (!pair) return out; // family/transport 0x00, length 0
  const [s, d] = pair;
  out[13] = ((s.bytes.length === 4 ? AF_INET : AF_INET6) << 4) | TRANSPORT_STREAM;
  out.writeUInt16BE(size, 14);
  out.set(s.bytes, 16);
  out.set(d.bytes, 16 + s.bytes.length);
  out.writeUInt16BE(s.port, 16 + 2 * s.bytes.length);
  out.writeUInt16BE(d.port, 18 + 2 * s.bytes.length);
  return out;
}

type Endpoint = { bytes: Uint8Array; port: number };

/** Both endpoints in one family: IPv4 when both are IPv4 or IPv4-mapped (what a dual-stack socket reports
 *  for an IPv4 client), else IPv6 with any IPv4 side mapped. */
function endpoints(src: ProxyEndpoint, dst: ProxyEndpoint): [Endpoint, Endpoint] | undefined {
  const s = endpoint(src);
  const d = endpoint(dst);
  if (!s || !d) return undefined;
  const s4 = toIPv4(s.bytes);
  const d4 = toIPv4(d.bytes);
  if (s4 && d4) return [{ bytes: s4, port: s.port }, { bytes: d4, port: d.port }];
  return [{ bytes: toIPv6(s.bytes), port: s.port }, { bytes: toIPv6(d.bytes), port: d.port }];
}

/** `family` is a hint: the address text decides, so "1.2.3.4" with family 6 is still sent as IPv4. */
function endpoint(e: ProxyEndpoint): Endpoint | undefined {
  if (!Number.isInteger(e.port) || e.port < 0 || e.port > 65535 || typeof e.address !== 'string') return undefined;
  // A zone ("fe80::1%eth0") has no place in either format and means nothing to the target.
  const address = e.address.replace(/%.*$/, '');
  const bytes = parseAddress(address, e.family === 4 ? 4 : 6) ?? parseAddress(address, e.family === 4 ? 6 : 4);
  return bytes && { bytes, port: e.port };
}
