// Failure: how one dial or exchange went wrong, as a value (never thrown). The kinds are the
// buckets simulate counts and ping reports; `message` names the peer and the time, e.g.
// "connection reset by 127.0.0.1:5001 after 3.2 ms".

export type FailureKind =
  | 'refused' // ECONNREFUSED: nothing listening
  | 'reset' // ECONNRESET / EPIPE: the peer aborted the connection
  | 'timeout' // no connection or no complete reply within the timeout
  | 'closed' // the peer closed without sending a single byte
  | 'wrongReply' // bytes arrived but they are not the expected reply
  | 'other'; // anything else (DNS failure, EHOSTUNREACH, …)

export const FAILURE_KINDS: readonly FailureKind[] = ['refused', 'reset', 'timeout', 'closed', 'wrongReply', 'other'];

export interface Failure {
  readonly kind: FailureKind;
  /** The system error code when there was one (ECONNREFUSED …), else the kind in capitals. */
  readonly code: string;
  readonly message: string;
  /** Wall-clock time of the failure (epoch ms), to line failures up with other events. */
  readonly at: number;
  /** Time since the connection attempt started. */
  readonly afterMs: number;
}

/** Buckets a Node socket error into a failure kind. */
export function failureKindOf(code: string | undefined): FailureKind {
  switch (code) {
    case 'ECONNREFUSED':
      return 'refused';
    case 'ECONNRESET':
    case 'EPIPE':
      return 'reset';
    case 'ETIMEDOUT':
      return 'timeout';
    default:
      return 'other';
  }
}

/** The code of a socket error; autoSelectFamily reports an AggregateError of per-address errors. */
export function errorCodeOf(err: unknown): string | undefined {
  const code = (err as { code?: unknown } | null)?.code;
  if (typeof code === 'string') return code;
  if (err instanceof AggregateError) return errorCodeOf(err.errors[0]);
  return undefined;
}

export function formatMs(ms: number): string {
  return ms >= 100 ? ms.toFixed(0) : ms >= 10 ? ms.toFixed(1) : ms.toFixed(2);
}

/** A failure from a socket error, with a message that says who did what when. */
export function socketFailure(err: unknown, peer: string, afterMs: number): Failure {
  const code = errorCodeOf(err) ?? 'ERR_UNKNOWN';
  const kind = failureKindOf(code);
  const after = `after ${formatMs(afterMs)} ms`;
  let message: string;
  if (kind === 'refused') message = `connection refused by ${peer} ${after} (${code}: is anything listening?)`;
  else if (kind === 'reset') message = `connection reset by ${peer} ${after} (${code})`;
  else if (code === 'ENOTFOUND' || code === 'EAI_AGAIN') message = `cannot resolve the host of ${peer} (${code})`;
  else message = `connection to ${peer} failed ${after}: ${(err as Error)?.message ?? String(err)}`;
  return { kind, code, message, at: Date.now(), afterMs };
}

export function makeFailure(kind: FailureKind, message: string, afterMs: number): Failure {
  const code = kind === 'wrongReply' ? 'WRONG_REPLY' : kind.toUpperCase();
  return { kind, code, message, at: Date.now(), afterMs };
}
