// ensureMigrateReq: makes sure net.ipv4.tcp_migrate_req is 1 in the daemon's network namespace.
// Why: closing one SO_REUSEPORT listener resets the connections still waiting in its accept
// queue; with the sysctl (Linux ≥ 5.14) the kernel moves them to another listener of the group,
// which is what makes "old generation stops accepting" lose nothing during a rollout. It must be
// on before the listeners' sockets exist, so the daemon calls this before forking any. Where it
// cannot be read or set (old kernel, not root, not Linux) the daemon runs anyway and warns.
// FPROXY_MIGRATE_REQ=leave makes the daemon only read it (sysctls managed elsewhere, and tests,
// which must not change the host's network settings outside a namespace of their own).
import { readFile, writeFile } from 'node:fs/promises';
import { DaemonError } from './daemon-error.ts';
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

export interface MigrateReqMode {
  /** false: read only, never write (FPROXY_MIGRATE_REQ=leave). */
  readonly write: boolean;
}

/** FPROXY_MIGRATE_REQ: `set` (the default: turn it on) or `leave` (read only). */
export function parseMigrateReqMode(raw: string | undefined): MigrateReqMode {
  if (raw === undefined || raw === '' || raw === 'set') return { write: true };
  if (raw === 'leave') return { write: false };
  throw new DaemonError('ERR_MIGRATE_REQ_INVALID', `Invalid FPROXY_MIGRATE_REQ "${raw}": use "set" (turn net.ipv4.tcp_migrate_req on, the default) or "leave" (only read it)`);
}

export async function ensureMigrateReq(logger: Logger, path = MIGRATE_REQ_PATH, mode: MigrateReqMode = { write: true }): Promise<MigrateReqStatus> {
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
  if (!mode.write) {
    const reason = `${path} is ${value} and FPROXY_MIGRATE_REQ=leave: not changing it`;
    logger.warn({ path, reason }, 'tcp_migrate_req is off: connections queued on a draining listener may be reset during rollouts');
    return { enabled: false, changed: false, reason };
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
