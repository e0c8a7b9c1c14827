// How config issues name where they are: `Apps[1].Ports[0]`, as a user reading config.json would
// point at it. Pure. An empty path means the whole document.

export type PathSegment = string | number;

/** An issue before its path is formatted (rules and cert checks build these). */
export interface PathIssue {
  readonly path: readonly PathSegment[];
  readonly message: string;
  /** The issue is only that this key is absent (a "did you mean" for it may stand in for it). */
  readonly missing?: boolean;
  /** This issue says all there is to say here: drop the schema's issues at or under its path. */
  readonly replaces?: boolean;
}

const IDENTIFIER = /^[A-Za-z_$][A-Za-z0-9_$]*$/;

export function formatPath(path: readonly PropertyKey[]): string {
  let out = '';
  for (const seg of path) {
    if (typeof seg === 'number') out += `[${seg}]`;
    else if (typeof seg === 'string' && IDENTIFIER.test(seg)) out += out === '' ? seg : `.${seg}`;
    else out += `[${JSON.stringify(String(seg))}]`;
  }
  return out;
}
