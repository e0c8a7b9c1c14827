#!/usr/bin/env node
// fproxy: the daemon (no subcommand), `check` a config, `status` of a running daemon, `upgrade` it in
// place, `listen` to serve one app standalone, or change a running daemon through its admin API:
// `apps`, `targets add|rm|drain|enable`, `reload`.
import path from 'node:path';
import { Command, InvalidArgumentError } from 'commander';

const program = new Command('fproxy')
  .description('L4 TCP/TLS proxy: a daemon that runs one listener process per app in config.json')
  .showHelpAfterError();

program
  .command('run', { isDefault: true })
  .description('run the daemon on $FPROXY_CONFIG_PATH (default ./config.json); same as `npm start`')
  .action(async () => {
    const { main } = await import('../daemon/main.ts');
    await main();
  });

program
  .command('check')
  .argument('[file]', 'config file or etcd://host:2379/key (default: $FPROXY_CONFIG_PATH or ./config.json)')
  .description('validate a config: every problem with its path (exit 1), or one line per app (exit 0)')
  .action(async (file?: string) => {
    const { runCheck } = await import('../daemon/check.ts');
    process.exitCode = await runCheck(file);
  });

program
  .command('status')
  .description('what the running daemon does: apps, workers, connections/s, targets up (or one app\'s targets)')
  .option('--admin <addr>', 'the daemon\'s admin address (default: $FPROXY_ADMIN_ADDR or 127.0.0.1:9900)')
  .option('--json', 'print the JSON from GET /stats instead of a table')
  .option('--app <name>', 'one app: each target\'s health and counters')
  .action(async (opts: { admin?: string; json?: boolean; app?: string }) => {
    const { runStatus } = await import('../daemon/status-command.ts');
    process.exitCode = await runStatus(opts);
  });

program
  .command('upgrade')
  .description('replace the running daemon with one started from the code on disk, dropping no connection (SIGUSR2)')
  .option('--admin <addr>', 'the daemon\'s admin address (default: $FPROXY_ADMIN_ADDR or 127.0.0.1:9900)')
  .option('--timeout-ms <ms>', 'give up waiting after this long (the daemon keeps serving either way)', (v) => Number(v), 120_000)
  .action(async (opts: { admin?: string; timeoutMs: number }) => {
    const { runUpgrade } = await import('../daemon/upgrade-command.ts');
    process.exitCode = await runUpgrade(opts);
  });

program
  .command('listen')
  .description('serve one app of a config in the foreground (no daemon; for tests and benchmarks)')
  .requiredOption('--config <file>', 'config file')
  .requiredOption('--app <name>', 'app name in that config')
  .action(async (opts: { config: string; app: string }) => {
    const { loadConfigFile } = await import('../daemon/config/load.ts');
    const { toListenerSpecs } = await import('../daemon/config/to-spec.ts');
    const { formatIssues } = await import('../daemon/config/validate.ts');
    const { runStandalone } = await import('../proxy/index.ts');
    let specs;
    try {
      const loaded = await loadConfigFile(opts.config);
      specs = toListenerSpecs(loaded.config, path.dirname(path.resolve(opts.config)));
    } catch (err) {
      const e = err as Error & { issues?: { path: string; message: string }[] };
      console.error(`${e.message}${e.issues?.length ? `\n${formatIssues(e.issues)}` : ''}`);
      process.exit(1);
    }
    const spec = specs.get(opts.app);
    if (!spec) {
      console.error(`No app named "${opts.app}" in ${opts.config}; apps: ${[...specs.keys()].join(', ')}`);
      process.exit(1);
    }
    try {
      await runStandalone(spec);
    } catch (err) {
      console.error(`fproxy listen: ${(err as Error).message}`);
      process.exit(1);
    }
  });

// Thin clients of the admin API (daemon/cli/admin-cli.ts): exit 0 done, 1 refused, 2 unreachable.
const ADMIN_HELP = 'admin address (default: $FPROXY_ADMIN_ADDR or 127.0.0.1:9900); token from $FPROXY_ADMIN_TOKEN or $FPROXY_ADMIN_TOKEN_FILE';
async function admin(command: import('../daemon/cli/admin-cli.ts').AdminCommand, opts: { admin?: string }): Promise<void> {
  const { runAdminCommand } = await import('../daemon/cli/admin-cli.ts');
  process.exitCode = await runAdminCommand(command, opts.admin === undefined ? {} : { admin: opts.admin });
}

program
  .command('apps')
  .description('list the running apps, their generation, state and targets\' health')
  .option('--admin <addr>', ADMIN_HELP)
  .option('--json', 'print GET /apps as JSON')
  .action((opts: { admin?: string; json?: boolean }) => admin({ kind: 'apps', json: opts.json === true }, opts));

const targets = program.command('targets').description('change an app\'s targets through the admin API (writes need the admin token)');
targets
  .command('add')
  .argument('<app>')
  .argument('<host:port>')
  .option('--weight <n>', 'relative share of new connections (1-100)', (v: string) => {
    const n = Number(v);
    if (!Number.isInteger(n) || n < 1 || n > 100) throw new InvalidArgumentError('use an integer from 1 to 100');
    return n;
  })
  .option('--backup', 'only used when no primary target is usable')
  .option('--admin <addr>', ADMIN_HELP)
  .description('add a target: written to the config and rolled out; returns once the new generation serves')
  .action((app: string, target: string, opts: { admin?: string; weight?: number; backup?: boolean }) =>
    admin({ kind: 'add', app, target, ...(opts.weight === undefined ? {} : { weight: opts.weight }), ...(opts.backup ? { backup: true } : {}) }, opts));
for (const [name, kind, text] of [
  ['rm', 'rm', 'remove a target from the config and the rotation (its open connections drain)'],
  ['drain', 'drain', 'stop new connections to a target, open ones continue (runtime only, not written to the config)'],
  ['enable', 'enable', 'end a drain'],
] as const) {
  targets
    .command(name)
    .argument('<app>')
    .argument('<host:port>')
    .option('--admin <addr>', ADMIN_HELP)
    .description(text)
    .action((app: string, target: string, opts: { admin?: string }) => admin({ kind, app, target }, opts));
}

program
  .command('reload')
  .description('make the daemon re-read its config now (as SIGHUP)')
  .option('--admin <addr>', ADMIN_HELP)
  .action((opts: { admin?: string }) => admin({ kind: 'reload' }, opts));

// With `run` as the default command, commander would hand an unknown word to it ("too many
// arguments for 'run'"): name the word and the closest command instead.
const first = process.argv[2];
const commands = [...program.commands.map((c) => c.name()), 'help'];
if (first !== undefined && !first.startsWith('-') && !commands.includes(first)) {
  const { suggestKey } = await import('../daemon/config/suggest-key.ts');
  const near = suggestKey(first, commands);
  console.error(`fproxy: unknown command '${first}'${near ? ` (did you mean '${near}'?)` : ''}; commands: ${commands.filter((c) => c !== 'help').join(', ')} (see fproxy --help)`);
  process.exit(1);
}

await program.parseAsync(process.argv);
