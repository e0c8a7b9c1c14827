// sourceKey: the key per-source limits count under. An IPv4 client (or IPv4-mapped IPv6) is its
// address; an IPv6 client is its /prefix6 network (one host usually owns a whole /64, so counting
// single IPv6 addresses would let it walk around every limit). Pure.

/** "10.0.0.7" → "10.0.0.7"; "::ffff:10.0.0.7" → "10.0.0.7"; "2001:db8:1:2:3::4" with 64 → "2001:db8:1:2::/64". */
export function sourceKey(address: string, prefix6: number): string {
  if (!address.includes(':')) return address;
  const lower = address.toLowerCase();
  if (lower.startsWith('::ffff:') && lower.includes('.')) return lower.slice(7);
  if (prefix6 >= 128) return lower;
  const groups = expand(lower);
  if (groups === undefined) return lower;
  const out: string[] = [];
  for (let g = 0; g < 8; g++) {
    const bits = Math.max(0, Math.min(16, prefix6 - 16 * g));
    const mask = bits === 0 ? 0 : (0xffff << (16 - bits)) & 0xffff;
    out.push((groups[g]! & mask).toString(16));
  }
  // Trailing zero groups collapse to "::" so the key reads like the network it stands for.
  let end = 8;
  while (end > 0 && out[end - 1] === '0') end--;
  return `${end === 8 ? out.join(':') : `${out.slice(0, end).join(':')}::`}/${prefix6}`;
}

function expand(a: string): number[] | undefined {
  const dbl = a.indexOf('::');
  const head = dbl < 0 ? a : a.slice(0, dbl);
  const tail = dbl < 0 ? '' : a.slice(dbl + 2);
  const h = head === '' ? [] : head.split(':');
  const t = tail === '' ? [] : tail.split(':');
  if (t.length > 0 && t[t.length - 1]!.includes('.')) {
    const q = t.pop()!.split('.').map(Number);
    t.push(((q[0]! << 8) | q[1]!).toString(16), ((q[2]! << 8) | q[3]!).toString(16));
  }
  const fill = 8 - h.length - t.length;
  if (fill < 0 || (dbl < 0 && fill !== 0)) return undefined;
  const all = [...h, ...new Array<string>(fill).fill('0'), ...t].map((g) => parseInt(g, 16));
  return all.some((g) => Number.isNaN(g)) ? undefined : all;
}
