// `ftest serve PORT...`: echo targets in the foreground until SIGINT/SIGTERM. One line per port
// on stdout ("listening 127.0.0.1:9001 [::1]:9001") so scripts and tests can read real ports.

import { Command } from 'commander';
import { startEchoServers } from '../echo-server.ts';
import { portListArg } from '../options.ts';

export function serveCommand(): Command {
  return new Command('serve')
    .description('run TCP echo targets (one server per port) until SIGINT/SIGTERM')
    .argument('<ports...>', 'ports to listen on; 0 picks a free port (the real one is printed)', portListArg)
    .option('--host <host>', 'listen on this address only (default: 127.0.0.1 and ::1)')
    .option('--tag', 'start each connection\'s reply with "PORT:" (e.g. "9001:hello") to tell targets apart')
    .addHelpText('after', '\nOutput: one line per port, e.g. "listening 127.0.0.1:9001 [::1]:9001".')
    .action(async (ports: number[], opts: { host?: string; tag?: boolean }) => {
      // Handlers first: whoever reads the "listening" lines may signal us right away.
      const stopped = new Promise<void>((resolve) => {
        process.once('SIGINT', resolve);
        process.once('SIGTERM', resolve);
      });
      const servers = await startEchoServers({ ports, host: opts.host, tag: opts.tag ?? false });
      for (const addresses of servers.addresses) console.log(`listening ${addresses.join(' ')}`);
      await stopped;
      await servers.close();
      process.exit(0);
    });
}
