// Daemon process entry (`npm start`, and `fproxy` with no subcommand through main()).
// Owns the process-level concerns: signals, exit codes, and the last-resort error handlers.
//   SIGHUP          → re-read the config now
//   SIGUSR1         → passed on to every listener (they reopen FPROXY_ACCESS_LOG, for logrotate)
//   SIGUSR2         → upgrade: start a new daemon from the code on disk beside this one; once it
//                     serves every app it takes the admin socket and this one drains and exits 0;
//                     if it fails, this one keeps serving (GET /status `upgrade` says why)
//   SIGTERM/SIGINT  → stop accepting everywhere, drain (up to each app's DrainTimeoutMs), exit 0;
//                     a second one while draining exits 1 at once (listeners then drain by themselves)
//   invalid config or LOG_LEVEL at start, admin port taken, a non-loopback admin address without
//   an admin token → message on stderr, exit 1
// Environment: FPROXY_CONFIG_PATH (default ./config.json; or etcd://host1:2379,host2:2379/key, see
// daemon/config-source/source-from-env.ts for FPROXY_ETCD_* and FPROXY_STATE_DIR), FPROXY_ADMIN_ADDR (default
// 127.0.0.1:9900; ":0" = any free port, the bound address is logged), FPROXY_ADMIN_TOKEN or
// FPROXY_ADMIN_TOKEN_FILE (bearer token for admin API writes; none = writes disabled), FPROXY_SPARE_LISTENERS
// (idle listeners forked ahead of need, default 2, 0 = none), LOG_LEVEL (default info);
// FPROXY_DNS_SERVERS and the rest pass through to the listeners.
import { runDaemon } from './daemon.ts';
import type { Daemon } from './daemon.ts';
import { createDaemonLogger } from './logger.ts';
import type { Logger } from './logger.ts';
import { Takeover } from './upgrade/takeover.ts';

export async function main(): Promise<void> {
  // What `ps` shows (as nginx's "nginx: master process"); listeners name themselves likewise.
  process.title = 'fproxy: daemon';
  let logger: Logger;
  try {
    logger = createDaemonLogger();
  } catch (err) {
    process.stderr.write(`fproxy: ${(err as Error).message}\n`);
    process.exit(1);
  }
  const log = logger;

  let daemon: Daemon | undefined;
  let stopSignal: NodeJS.Signals | undefined;
  const onStop = (signal: NodeJS.Signals): void => {
    if (stopSignal !== undefined) {
      log.warn({ event: 'second-stop-signal', signal }, 'second stop signal while draining; exiting now');
      process.exit(1);
    }
    stopSignal = signal;
    if (daemon) void shutdown(daemon, signal, log);
  };
  process.on('SIGTERM', onStop);
  process.on('SIGINT', onStop);
  process.on('SIGHUP', () => {
    log.info('SIGHUP: re-reading the config');
    void daemon?.reload('SIGHUP');
  });
  // Handled even before the daemon runs: unhandled, Node would start its inspector on SIGUSR1.
  process.on('SIGUSR1', () => {
    for (const app of daemon?.apps() ?? []) {
      for (const pid of [...app.pids, ...app.drainingPids]) {
        try {
          process.kill(pid, 'SIGUSR1');
        } catch {
          // Exited since the status was taken.
        }
      }
    }
  });
  // A SIGUSR2 that comes while the daemon is still starting is carried out once it runs.
  let upgradeWanted = false;
  const upgrade = (): void => {
    if (daemon === undefined || stopSignal !== undefined) return;
    void daemon.upgrade().then((handedOver) => {
      if (handedOver) process.exit(0);
    });
  };
  process.on('SIGUSR2', () => {
    log.info({ event: 'upgrade-signal', starting: daemon === undefined }, daemon === undefined ? 'SIGUSR2: upgrading once started' : 'SIGUSR2: upgrading');
    upgradeWanted = daemon === undefined;
    upgrade();
  });
  process.on('uncaughtException', (err) => {
    // A daemon bug: the listeners notice the IPC disconnect and drain by themselves.
    log.fatal({ err }, 'uncaught exception in the daemon');
    process.exit(70);
  });

  let takeover: Takeover | undefined;
  try {
    // Spawned by a running daemon's upgrade: take over from it (undefined in a normal start).
    takeover = await Takeover.fromParent();
    daemon = await runDaemon({ logger: log, ...(takeover === undefined ? {} : { takeover }) });
  } catch (err) {
    const e = err as { code?: string; message?: string };
    // An expected failure (a coded DaemonError: admin port taken, invalid config) is one plain line;
    // the error object would repeat its cause's message and add a stack. Anything else is a bug.
    if (e.code?.startsWith('ERR_')) log.fatal({ code: e.code, err: e.message }, 'daemon failed to start');
    else log.fatal({ err }, 'daemon failed to start');
    process.stderr.write(`fproxy: ${e.message ?? String(err)}\n`);
    // A successor tells the daemon that spawned it, which keeps serving and reports the reason.
    await takeover?.failed(err);
    process.exit(1);
  }
  if (stopSignal !== undefined) void shutdown(daemon, stopSignal, log);
  else if (upgradeWanted) upgrade();
}

async function shutdown(daemon: Daemon, signal: NodeJS.Signals, log: Logger): Promise<void> {
  try {
    await daemon.stop(signal);
    process.exit(0);
  } catch (err) {
    log.fatal({ err }, 'shutdown failed');
    process.exit(1);
  }
}

if (import.meta.main) await main();
