// IP address text ⇄ bytes for the PROXY protocol, strictly: the spec's canonical forms only (no
// leading zeros, no octal), RFC 5952 output as Node's socket.remoteAddress reports it. Pure.

export function parseAddress(text: string, family: 4 | 6): Uint8Array | undefined {
  return family === 4 ? parseIPv4(text) : parseIPv6(text);
}

/** Exactly four decimal numbers 0..255 without leading zeros (spec §2.1: no octal confusion). */
export function parseIPv4(text: string): Uint8Array | undefined {
  const parts = text.split('.');
  if (parts.length !== 4) return undefined;
  const out = new Uint8Array(4);
  for (let i = 0; i < 4; i++) {
    if (!/^(0|[1-9][0-9]{0,2})$/.test(parts[i]!)) return undefined;
    const n = Number(parts[i]);
    if (n > 255) return undefined;
    out[i] = n;
  }
  return out;
}

/** RFC 4291 §2.2 text forms: 8 groups of 1–4 hex digits, at most one "::", optionally an IPv4 tail. */
export function parseIPv6(text: string): Uint8Array | undefined {
  if (text.length < 2 || text.length > 45) return undefined;
  const gap = text.indexOf('::');
  if (gap !== -1 && text.indexOf('::', gap + 1) !== -1) return undefined;
  const head = gap === -1 ? groups(text, true) : groups(text.slice(0, gap), false);
  const tail = gap === -1 ? [] : groups(text.slice(gap + 2), true);
  if (!head || !tail) return undefined;
  const count = head.length + tail.length;
  if (gap === -1 ? count !== 8 : count > 7) return undefined;
  const words = [...head, ...new Array<number>(8 - count).fill(0), ...tail];
  const out = new Uint8Array(16);
  words.forEach((w, i) => {
    out[2 * i] = w >> 8;
    out[2 * i + 1] = w & 0xff;
  });
  return out;
}

function groups(text: string, ipv4Tail: boolean): number[] | undefined {
  if (text === '') return [];
  const parts = text.split(':');
  const words: number[] = [];
  for (let i = 0; i < parts.length; i++) {
    const part = parts[i]!;
    if (ipv4Tail && i === parts.length - 1 && part.includes('.')) {
      const v4 = parseIPv4(part);
      if (!v4) return undefined;
      words.push((v4[0]! << 8) | v4[1]!, (v4[2]! << 8) | v4[3]!);
    } else if (/^[0-9A-Fa-f]{1,4}$/.test(part)) {
      words.push(parseInt(part, 16));
    } else {
      return undefined;
    }
  }
  return words;
}

/** Dotted quad, or RFC 5952 IPv6 (lower case, longest zero run as "::", IPv4-mapped as ::ffff:a.b.c.d
 *  like Node's socket.remoteAddress). */
export function formatAddress(b: Uint8Array): string {
  if (b.length === 4) return `${b[0]}.${b[1]}.${b[2]}.${b[3]}`;
  const words = Array.from({ length: 8 }, (_, i) => (b[2 * i]! << 8) | b[2 * i + 1]!);
  if (toIPv4(b)) return `::ffff:${b[12]}.${b[13]}.${b[14]}.${b[15]}`;
  let best = -1;
  let bestLength = 1; // a single zero group is not compressed
  for (let i = 0; i < 8; ) {
    let j = i;
    while (j < 8 && words[j] === 0) j++;
    if (j - i > bestLength) [best, bestLength] = [i, j - i];
    i = j === i ? i + 1 : j;
  }
  const hex = words.map((w) => w.toString(16));
  if (best < 0) return hex.join(':');
  return `${hex.slice(0, best).join(':')}::${hex.slice(best + bestLength).join(':')}`;
}

const MAPPED_PREFIX = Uint8Array.of(0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff);

export function toIPv4(b: Uint8Array): Uint8Array | undefined {
  if (b.length === 4) return b;
  return MAPPED_PREFIX.every((v, i) => b[i] === v) ? b.subarray(12) : undefined;
}

export function toIPv6(b: Uint8Array): Uint8Array {
  if (b.length === 16) return b;
  const out = new Uint8Array(16);
  out.set(MAPPED_PREFIX);
  out.set(b, 12);
  return out;
}
