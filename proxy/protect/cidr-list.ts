// CidrList: the app's Allow/Deny lists, compiled once into integer ranges so the check at accept is
// a parse of the address text and a few integer compares (no allocation for IPv4 clients).
// Rules: Deny wins; with an Allow list present, an address not in it is refused; an IPv4-mapped
// IPv6 address ("::ffff:10.0.0.1", what a dual-stack socket reports for IPv4 clients) matches
// IPv4 ranges and only those. Pure: strings in, verdicts out.

export type CidrVerdict = 'allow' | 'deny';

export class CidrError extends Error {
  readonly code = 'ERR_CIDR_INVALID';
  readonly cidr: string;
  constructor(cidr: string, message: string) {
    super(message);
    this.cidr = cidr;
  }
}

/** One range: four 32-bit words (IPv4 uses word 0 only) and the prefix length. */
interface Range {
  readonly v6: boolean;
  readonly words: Uint32Array;
  readonly masks: Uint32Array;
}

const scratch = new Uint32Array(4);

/**
 * Parses `a.b.c.d` into scratch[0]; returns false when malformed. No allocation.
 */
function parseV4(s: string, start: number, end: number, out: Uint32Array, at: number): boolean {
  let value = 0;
  let octet = -1;
  let dots = 0;
  let digits = 0;
  for (let i = start; i < end; i++) {
    const c = s.charCodeAt(i);
    if (c === 46) {
      if (octet < 0 || dots === 3) return false;
      value = value * 256 + octet;
      octet = -1;
      dots++;
      digits = 0;
    } else if (c >= 48 && c <= 57) {
      if (digits > 0 && octet === 0) return false; // no leading zeros: "010" is ambiguous (octal)
      octet = (octet < 0 ? 0 : octet * 10) + (c - 48);
      if (++digits > 3 || octet > 255) return false;
    } else {
      return false;
    }
  }
  if (dots !== 3 || octet < 0) return false;
  out[at] = (value * 256 + octet) >>> 0;
  return true;
}

/** Parses IPv6 text (with an optional dotted IPv4 tail) into out[0..3]. */
function parseV6(s: string, out: Uint32Array): boolean {
  const groups: number[] = [];
  let gap = -1;
  let i = 0;
  const n = s.length;
  if (n === 0) return false;
  if (s.startsWith('::')) {
    gap = 0;
    i = 2;
    if (n === 2) {
      out.fill(0);
      return true;
    }
  }
  while (i < n) {
    let j = i;
    while (j < n && s.charCodeAt(j) !== 58) j++;
    const part = s.slice(i, j);
    if (part.includes('.')) {
      if (j !== n || groups.length > 6) return false;
      const tmp = new Uint32Array(1);
      if (!parseV4(part, 0, part.length, tmp, 0)) return false;
      groups.push(tmp[0]! >>> 16, tmp[0]! & 0xffff);
      i = n;
      break;
    }
    if (!/^[0-9a-fA-F]{1,4}$/.test(part)) return false;
    groups.push(parseInt(part, 16));
    if (j === n) {
      i = n;
      break;
    }
    if (s.charCodeAt(j + 1) === 58) {
      if (gap >= 0) return false;
      gap = groups.length;
      i = j + 2;
      if (i === n) break;
    } else {
      i = j + 1;
      if (i === n) return false;
    }
  }
  if (gap < 0 ? groups.length !== 8 : groups.length > 7) return false;
  const full = gap < 0 ? groups : [...groups.slice(0, gap), ...new Array<number>(8 - groups.length).fill(0), ...groups.slice(gap)];
  for (let w = 0; w < 4; w++) out[w] = ((full[2 * w]! << 16) | full[2 * w + 1]!) >>> 0;
  return true;
}

function maskWords(prefix: number, words: number): Uint32Array {
  const m = new Uint32Array(words);
  for (let w = 0; w < words; w++) {
    const bits = Math.max(0, Math.min(32, prefix - 32 * w));
    m[w] = bits === 0 ? 0 : (0xffffffff << (32 - bits)) >>> 0;
  }
  return m;
}

/** Parses "10.0.0.0/8", "::1/128", or a bare address (a /32 or /128). Throws CidrError. */
export function parseCidr(text: string): Range {
  const slash = text.indexOf('/');
  const addr = slash < 0 ? text : text.slice(0, slash);
  const v6 = addr.includes(':');
  const maxPrefix = v6 ? 128 : 32;
  let prefix = maxPrefix;
  if (slash >= 0) {
    const p = text.slice(slash + 1);
    if (!/^[0-9]{1,3}$/.test(p) || Number(p) > maxPrefix) {
      throw new CidrError(text, `"${text}" has a bad prefix length "${p}": use 0–${maxPrefix} for an IPv${v6 ? 6 : 4} range, as in "${v6 ? '2001:db8::/32' : '10.0.0.0/8'}"`);
    }
    prefix = Number(p);
  }
  const words = new Uint32Array(v6 ? 4 : 1);
  const ok = v6 ? parseV6(addr, words) : parseV4(addr, 0, addr.length, words, 0);
  if (!ok) throw new CidrError(text, `"${text}" is not an IPv4 or IPv6 address or CIDR range: write it as "10.0.0.0/8", "192.0.2.7" or "2001:db8::/32"`);
  const masks = maskWords(prefix, words.length);
  for (let w = 0; w < words.length; w++) {
    if ((words[w]! & ~masks[w]!) >>> 0 !== 0) {
      const base = v6 ? undefined : [24, 16, 8, 0].map((s) => ((words[0]! & masks[0]!) >>> s) & 255).join('.');
      throw new CidrError(text, `"${text}" has bits set past its /${prefix} prefix: write the range's first address${base ? `, "${base}/${prefix}"` : ''}`);
    }
  }
  return { v6, words, masks };
}

/** Returns a problem message for a config value, or undefined when it parses. */
export function cidrProblem(text: string): string | undefined {
  try {
    parseCidr(text);
    return undefined;
  } catch (err) {
    return (err as Error).message;
  }
}

function matches(ranges: readonly Range[], v6: boolean, a: Uint32Array): boolean {
  for (const r of ranges) {
    if (r.v6 !== v6) continue;
    const n = r.words.length;
    let hit = true;
    for (let w = 0; w < n; w++) {
      if (((a[w]! & r.masks[w]!) >>> 0) !== r.words[w]) {
        hit = false;
        break;
      }
    }
    if (hit) return true;
  }
  return false;
}

export class CidrList {
  readonly #allow: readonly Range[] | null;
  readonly #deny: readonly Range[];

  /** Throws CidrError on the first bad entry (the config schema reports every one before this). */
  constructor(allow: readonly string[] | null, deny: readonly string[]) {
    this.#allow = allow === null ? null : allow.map(parseCidr);
    this.#deny = deny.map(parseCidr);
  }

  /** Unparsable text (never from a socket) is denied. */
  verdict(address: string): CidrVerdict {
    let v6 = address.includes(':');
    // The common case on a dual-stack socket: an IPv4 client as "::ffff:a.b.c.d", parsed in place.
    if (v6 && address.length > 7 && address.charCodeAt(6) === 58 && address.startsWith('::ffff:') && parseV4(address, 7, address.length, scratch, 0)) {
      v6 = false;
    } else if (v6) {
      if (!parseV6(address, scratch)) return 'deny';
      // IPv4-mapped ::ffff:a.b.c.d: the client is an IPv4 one.
      if (scratch[0] === 0 && scratch[1] === 0 && scratch[2] === 0xffff) {
        v6 = false;
        scratch[0] = scratch[3]!;
      }
    } else if (!parseV4(address, 0, address.length, scratch, 0)) {
      return 'deny';
    }
    if (matches(this.#deny, v6, scratch)) return 'deny';
    if (this.#allow !== null && !matches(this.#allow, v6, scratch)) return 'deny';
    return 'allow';
  }
}
