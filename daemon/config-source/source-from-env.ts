// sourceFromEnv: the one place that turns FPROXY_CONFIG_PATH (or the daemon's configPath) into a
// ConfigSource: `etcd://host:2379,…/key` → EtcdSource (TLS/auth from FPROXY_ETCD_CA, _CERT, _KEY,
// _USER, _PASSWORD; last good copy in FPROXY_STATE_DIR), anything else → FileSource (a path).
import { resolve } from 'node:path';
import { DaemonError } from '../daemon-error.ts';
import type { Logger } from '../logger.ts';
import type { ConfigSource } from './config-source.ts';
import { EtcdSource } from './etcd-source.ts';
import { FileSource } from './file-source.ts';
import { DEFAULT_STATE_DIR } from './last-good.ts';

export function sourceFromEnv(pathOrUrl: string, logger: Logger, env: NodeJS.ProcessEnv): ConfigSource {
  if (!pathOrUrl.startsWith('etcd://')) return new FileSource(resolve(pathOrUrl), { logger });
  const { FPROXY_ETCD_CA: ca, FPROXY_ETCD_CERT: cert, FPROXY_ETCD_KEY: key, FPROXY_ETCD_USER: user, FPROXY_ETCD_PASSWORD: password } = env;
  if ((cert === undefined) !== (key === undefined)) throw new DaemonError('ERR_ETCD_TLS_INVALID', 'Set both FPROXY_ETCD_CERT and FPROXY_ETCD_KEY (a client certificate and its key), or neither');
  if ((cert !== undefined || key !== undefined) && ca === undefined) throw new DaemonError('ERR_ETCD_TLS_INVALID', 'FPROXY_ETCD_CERT/FPROXY_ETCD_KEY need FPROXY_ETCD_CA (the CA that signed the etcd members\' certificates)');
  if ((user === undefined) !== (password === undefined)) throw new DaemonError('ERR_ETCD_AUTH_INVALID', 'Set both FPROXY_ETCD_USER and FPROXY_ETCD_PASSWORD, or neither');
  const timing = { ...msOption('keepaliveMs', 'FPROXY_ETCD_KEEPALIVE_MS', env.FPROXY_ETCD_KEEPALIVE_MS), ...msOption('retryMaxMs', 'FPROXY_ETCD_RETRY_MAX_MS', env.FPROXY_ETCD_RETRY_MAX_MS) };
  try {
    return new EtcdSource(pathOrUrl, {
      logger,
      stateDir: env.FPROXY_STATE_DIR || DEFAULT_STATE_DIR,
      ...(ca !== undefined ? { tls: { ca, ...(cert !== undefined ? { cert } : {}), ...(key !== undefined ? { key } : {}) } } : {}),
      ...(user !== undefined && password !== undefined ? { auth: { user, password } } : {}),
      ...timing,
    });
  } catch (err) {
    const e = err as { code?: string; message?: string; issues?: { message: string }[] };
    if (e.code === 'ERR_CONFIG_READ') throw new DaemonError('ERR_CONFIG_PATH_INVALID', `Invalid FPROXY_CONFIG_PATH: ${e.issues?.[0]?.message ?? e.message}`, { cause: err });
    // A TLS file that cannot be read (readFileSync in the constructor).
    throw new DaemonError('ERR_ETCD_TLS_INVALID', `Cannot set up the etcd client for ${pathOrUrl}: ${e.message}`, { cause: err });
  }
}

function msOption(name: 'keepaliveMs' | 'retryMaxMs', variable: string, raw: string | undefined): Record<string, number> {
  if (raw === undefined || raw === '') return {};
  const n = Number(raw);
  if (!Number.isInteger(n) || n < 100 || n > 600_000) throw new DaemonError('ERR_ETCD_OPTION_INVALID', `Invalid ${variable} "${raw}": use an integer number of milliseconds from 100 to 600000`);
  return { [name]: n };
}
