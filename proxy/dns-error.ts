// DnsError: why a target host has no usable address, with a stable code and the fix in the message.
//   ERR_DNS_NOT_FOUND: the name has no A or AAAA record (NXDOMAIN, or no data): a config problem.
//   ERR_DNS_FAILED: the resolver did not answer (timeout, SERVFAIL, refused): a nameserver problem.
import { DNS_SERVERS_ENV } from './resolver.ts';

export type DnsErrorCode = 'ERR_DNS_NOT_FOUND' | 'ERR_DNS_FAILED';

export class DnsError extends Error {
  readonly code: DnsErrorCode;
  readonly host: string;
  constructor(code: DnsErrorCode, host: string, cause: unknown) {
    const why = describeCause(cause);
    super(
      code === 'ERR_DNS_NOT_FOUND'
        ? `DNS name "${host}" has no A or AAAA record (${why}); check the target's host in the app config`
        : `Cannot resolve "${host}": ${why}; check the nameservers (${DNS_SERVERS_ENV} or /etc/resolv.conf)`,
      { cause },
    );
    this.name = 'DnsError';
    this.code = code;
    this.host = host;
  }
}

/** The `code` of a Node error (ENOTFOUND, ETIMEOUT …), or "". */
export function errorCode(err: unknown): string {
  const code = (err as { code?: unknown } | null)?.code;
  return typeof code === 'string' ? code : '';
}

function describeCause(cause: unknown): string {
  if (cause === undefined) return 'no answer';
  const code = errorCode(cause);
  const message = cause instanceof Error ? cause.message : String(cause);
  return code !== '' && !message.includes(code) ? `${code}: ${message}` : message;
}
