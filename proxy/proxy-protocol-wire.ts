// PROXY protocol v2 wire constants (haproxy doc/proxy-protocol.txt §2.2), shared by the parser
// (proxy-protocol.ts) and the builders (build-proxy-header.ts).

export const V2_SIGNATURE = Uint8Array.of(0x0d, 0x0a, 0x0d, 0x0a, 0x00, 0x0d, 0x0a, 0x51, 0x55, 0x49, 0x54, 0x0a);
/** Signature, version/command, family/transport, 2-byte length. */
export const V2_HEADER_SIZE = 16;

export const COMMAND_LOCAL = 0x0;
export const COMMAND_PROXY = 0x1;
export const AF_UNSPEC = 0x0;
export const AF_INET = 0x1;
export const AF_INET6 = 0x2;
export const AF_UNIX = 0x3;
export const TRANSPORT_UNSPEC = 0x0;
export const TRANSPORT_STREAM = 0x1;
export const TRANSPORT_DGRAM = 0x2;
export const ADDRESS_BLOCK_SIZE: Record<number, number> = { [AF_INET]: 12, [AF_INET6]: 36, [AF_UNIX]: 216 };
