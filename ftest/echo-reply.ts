// What an echo target's reply looks like, shared by the server (which writes it) and the
// clients (which judge it). A tagged server prefixes each connection's reply stream once with
// "PORT:", so a reply to "hello" is "hello" (plain) or "9001:hello" (tagged). A client does not
// know the tag in advance; it tells a complete reply from a partial one because a tag is short
// printable ASCII without spaces or ':'.

export type ReplyVerdict = 'partial' | 'complete' | 'wrong';

/** Longer than any port number; bounds how long a reply without ':' can pass for a tag. */
const MAX_TAG_LENGTH = 32;
/** Printable ASCII except space and ':'. */
const TAG_BYTES = /^[\x21-\x39\x3b-\x7e]*$/;

export function tagPrefix(port: number): Buffer {
  return Buffer.from(`${port}:`);
}

/**
 * Judges the bytes received so far. With `expect`, the reply must equal it exactly; without,
 * it must be `sent` or `TAG:sent`. 'partial' means more bytes could still make it right.
 */
export function replyVerdict(received: Buffer, sent: Buffer, expect?: Buffer): ReplyVerdict {
  if (expect) return prefixVerdict(received, expect);
  const colon = received.indexOf(0x3a);
  // No ':' yet: either a plain echo in progress or a tag still arriving.
  const plain = prefixVerdict(received, sent);
  if (plain !== 'wrong') return plain;
  const tag = received.subarray(0, colon < 0 ? received.length : colon);
  if (tag.length > MAX_TAG_LENGTH || !TAG_BYTES.test(tag.toString('latin1'))) return 'wrong';
  if (colon < 0) return 'partial';
  return prefixVerdict(received.subarray(colon + 1), sent);
}

function prefixVerdict(received: Buffer, wanted: Buffer): ReplyVerdict {
  if (received.length > wanted.length) return 'wrong';
  if (!wanted.subarray(0, received.length).equals(received)) return 'wrong';
  return received.length === wanted.length ? 'complete' : 'partial';
}

/** The target that answered: the text before the first ':', or "untagged". */
export function replyTag(reply: Buffer | string): string {
  const text = reply.toString();
  const colon = text.indexOf(':');
  return colon > 0 ? text.slice(0, colon) : 'untagged';
}
