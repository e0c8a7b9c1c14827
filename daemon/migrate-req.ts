// ensureMigrateReq: makes sure net.ipv4.tcp_migrate_req is 1 in the daemon's network namespace.
// Why: closing one SO_REUSEPORT listener resets the connections still waiting in its accept
// queue; with the sysctl (Linux ≥ 5.14) the kernel moves them to another listener of the group,
// which is what makes "old generation stops accepting" lose nothing during a rollout. It must be
// on before the listeners' sockets exist, so the daemon calls this before forking any. Where it
// cannot be read or set (old kernel, not root, not Linux) the daemon runs anyway and warns.
import { readFile, writeFile } from 'node:fs/promises';
import type { Logger } from './logger.ts';

export const MIGRATE_REQ_PATH = '/proc/sys/net/ipv4/tcp_migrate_req';

export interface MigrateReqStatus {
  /** 1 = queued connections migrate on close. */
  readonly enabled: boolean;
  /** The daemon wrote the 1 (it was 0). */
  readonly changed: boolean;
  /** Why it is not enabled, when it is not. */
  readonly reason?: string;
}

export async function ensureMigrateReq(logger: Logger, path = MIGRATE_REQ_PATH): Promise<MigrateReqStatus> {
  let value: string;
  try {
    value = (await readFile(path, 'utf8')).trim();
  } catch (err) {
    const reason = `cannot read ${path} (${(err as NodeJS.ErrnoException).code ?? (err as Error).message}); needs Linux ≥ 5.14`;
    logger.warn({ path, reason }, 'tcp_migrate_req unavailable: connections queued on a draining listener may be reset during rollouts');
    return { enabled: false, changed: false, reason };
  }
  if (value === '1') {
    logger.info({ path }, 'tcp_migrate_req is on');
    return { enabled: true, changed: false };
  }
  try {
    await writeFile(path, '1\n');
    logger.info({ path, was: value }, 'set tcp_migrate_req=1 so queued connections migrate to the new generation');
    return { enabled: true, changed: true };
  } catch (err) {
    const reason = `cannot write ${path} (${(err as NodeJS.ErrnoException).code ?? (err as Error).message}); run as root or set net.ipv4.tcp_migrate_req=1`;
    logger.warn({ path, reason }, 'tcp_migrate_req is off: connections queued on a draining listener may be reset during rollouts');
    return { enabled: false, changed: false, reason };
  }
}
