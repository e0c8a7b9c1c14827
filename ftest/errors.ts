// FtestError: the one error type ftest throws for bad input or setup (a malformed address,
// an option out of range, a port it cannot bind). Failures of individual exchanges are never
// thrown; they are returned as outcomes (see failure.ts).

export type FtestErrorCode =
  | 'ERR_FTEST_ADDRESS' // HOST:PORT could not be parsed
  | 'ERR_FTEST_OPTION' // an option value is malformed or out of range
  | 'ERR_FTEST_LISTEN'; // an echo server could not bind

export class FtestError extends Error {
  readonly code: FtestErrorCode;

  constructor(code: FtestErrorCode, message: string, options?: ErrorOptions) {
    super(message, options);
    this.name = 'FtestError';
    this.code = code;
  }
}
