// AdminAuth: who may write through the admin API. The token comes from FPROXY_ADMIN_TOKEN or the
// file FPROXY_ADMIN_TOKEN_FILE names (one line; surrounding whitespace ignored). A request's
// bearer token is compared with crypto.timingSafeEqual on the two tokens' sha256 digests, so the
// comparison takes the same time whatever the token's length or how much of it matches.
//   no token configured → every write is 403 ERR_WRITES_DISABLED (says how to enable them)
//   no or wrong Authorization → 401 ERR_UNAUTHORIZED with WWW-Authenticate: Bearer
import { createHash, timingSafeEqual } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { DaemonError } from '../daemon-error.ts';
import { AdminError } from './router.ts';

export class AdminAuth {
  readonly #digest: Buffer | undefined;

  constructor(token: string | undefined) {
    this.#digest = token === undefined ? undefined : sha256(token);
  }

  get enabled(): boolean {
    return this.#digest !== undefined;
  }

  /** Throws the AdminError (401/403) a write without the right token gets. */
  check(authorization: string | undefined): void {
    if (this.#digest === undefined) {
      throw new AdminError(403, 'ERR_WRITES_DISABLED', 'Admin writes are disabled',
        'No admin token is configured, so writes are disabled: set FPROXY_ADMIN_TOKEN (or FPROXY_ADMIN_TOKEN_FILE, a file holding it) in the daemon\'s environment, restart it, and send "Authorization: Bearer <token>"');
    }
    const m = /^Bearer +(\S+) *$/i.exec(authorization ?? '');
    if (m === null || !timingSafeEqual(sha256(m[1]!), this.#digest)) {
      throw new AdminError(401, 'ERR_UNAUTHORIZED', 'Unauthorized',
        authorization === undefined ? 'This write needs "Authorization: Bearer <token>" (the daemon\'s FPROXY_ADMIN_TOKEN)' : 'The bearer token is not the daemon\'s admin token',
        { headers: { 'www-authenticate': 'Bearer realm="fproxy"' } });
    }
  }
}

/** The configured token: FPROXY_ADMIN_TOKEN, else the content of FPROXY_ADMIN_TOKEN_FILE, else none. Throws ERR_ADMIN_TOKEN. */
export function adminToken(env: NodeJS.ProcessEnv): string | undefined {
  const direct = env.FPROXY_ADMIN_TOKEN;
  const file = env.FPROXY_ADMIN_TOKEN_FILE;
  let token: string | undefined;
  if (direct !== undefined && direct !== '') token = direct.trim();
  else if (file !== undefined && file !== '') {
    try {
      token = readFileSync(file, 'utf8').trim();
    } catch (err) {
      throw new DaemonError('ERR_ADMIN_TOKEN', `Cannot read FPROXY_ADMIN_TOKEN_FILE "${file}": ${(err as Error).message}`, { cause: err });
    }
  } else return undefined;
  if (token.length < 16 || /\s/.test(token)) {
    throw new DaemonError('ERR_ADMIN_TOKEN', `The admin token (${direct ? 'FPROXY_ADMIN_TOKEN' : `FPROXY_ADMIN_TOKEN_FILE ${file}`}) must be at least 16 characters with no spaces: generate one with \`openssl rand -hex 32\``);
  }
  return token;
}

/** Loopback only: 127.0.0.0/8, ::1, localhost. */
export function isLoopbackHost(host: string): boolean {
  return host === 'localhost' || host === '::1' || /^127\.\d{1,3}\.\d{1,3}\.\d{1,3}$/.test(host) || /^::ffff:127\./i.test(host);
}

function sha256(text: string): Buffer {
  return createHash('sha256').update(text).digest();
}
