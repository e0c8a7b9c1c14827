// The ftest CLI: commander program with serve, ping, balancer, simulate, and shell completion
// (`completion bash|zsh|fish|powershell`, backed by @bomb.sh/tab's hidden `complete --` query
// command). bin/ftest.ts calls main(); the commands' logic lives in the library modules beside
// this one so scripts and tests can call it in-process.

import { Command } from 'commander';
import tab from '@bomb.sh/tab/commander';
import { balancerCommand } from './commands/balancer.ts';
import { pingCommand } from './commands/ping.ts';
import { serveCommand } from './commands/serve.ts';
import { simulateCommand } from './commands/simulate.ts';
import { FtestError } from './errors.ts';

export function buildProgram(): Command {
  const program = new Command('ftest')
    .description('test tools for fproxy: echo targets, ping, balancer spread, load simulation')
    .showHelpAfterError('(run with --help for usage)');
  program.addCommand(serveCommand());
  program.addCommand(pingCommand());
  program.addCommand(balancerCommand());
  program.addCommand(simulateCommand());
  // Registers `completion <shell>` and the hidden `complete -- <words>` the scripts call back.
  tab(program, { completionCommandName: 'completion' });
  program.commands.find((command) => command.name() === 'completion')?.addHelpText('after', [
    '',
    'Load with: source <(ftest completion bash)   (zsh: same; fish: ftest completion fish | source).',
    'The script calls `ftest complete -- …` back, so `ftest` must be on PATH: npm link, or a shell',
    'function such as: ftest() { npx ftest "$@"; }',
  ].join('\n'));
  return program;
}

export async function main(argv: readonly string[]): Promise<void> {
  try {
    await buildProgram().parseAsync([...argv]);
  } catch (err) {
    if (!(err instanceof FtestError)) throw err;
    console.error(`ftest: ${err.message}`);
    process.exitCode = 1;
  }
}
