// The closing verdict every load check prints (rollout-check, upgrade-check, api-write-check): OK,
// or FAIL with each problem and the daemon's last log lines, as an exit code; and the one way a
// check script runs its main() (an exception is a failed check with its message, never a stack).

/** Prints OK or FAIL with the problems (and, unless verbose, the daemon's last log lines); returns the exit code. */
export function verdict(problems: readonly string[], verbose: boolean, daemonTail: readonly string[]): number {
  if (problems.length > 0) {
    process.stdout.write(`FAIL\n${problems.map((p) => `  - ${p}`).join('\n')}\n`);
    if (!verbose) process.stderr.write(`last daemon log lines:\n${daemonTail.slice(-30).join('\n')}\n`);
    return 1;
  }
  process.stdout.write('OK\n');
  return 0;
}

/** Runs a check's main() and sets the process exit code from it. */
export async function runCheck(name: string, main: () => Promise<number>): Promise<void> {
  process.exitCode = await main().catch((err: unknown) => {
    process.stderr.write(`${name}: ${(err as Error).message}\n`);
    return 1;
  });
}
