// `fproxy check [file]`: validate a config the way the daemon would load it (schema, rules, cert
// files) without starting anything. Prints every problem with its path and returns 1, or prints
// one summary line per app (with defaults applied, as the listeners would get them) and returns 0.
// `fproxy check etcd://host:2379/key` checks what etcd holds now (TLS/auth from the same
// FPROXY_ETCD_* variables as the daemon); etcd not answering is an error, never the disk copy.
import type { ListenerSpec, TargetSpec } from '../proxy/index.ts';
import { createLogger } from '../proxy/index.ts';
import type { LoadedConfig } from './config/load.ts';
import { loadConfig, loadConfigFile } from './config/load.ts';
import { sourceFromEnv } from './config-source/source-from-env.ts';
import { DaemonError } from './daemon-error.ts';
import { toListenerSpecs } from './config/to-spec.ts';
import { ConfigError, formatIssues } from './config/validate.ts';

export interface CheckOutput {
  log: (s: string) => void;
  error: (s: string) => void;
}

const CONSOLE: CheckOutput = { log: (s) => console.log(s), error: (s) => console.error(s) };

export async function runCheck(file: string | undefined, out: CheckOutput = CONSOLE): Promise<number> {
  const path = file ?? (process.env.FPROXY_CONFIG_PATH || 'config.json');
  let specs: Map<string, ListenerSpec>;
  let abs: string;
  try {
    const loaded = path.startsWith('etcd://') ? await loadFromEtcd(path) : await loadConfigFile(path);
    abs = loaded.path;
    specs = toListenerSpecs(loaded.config, loaded.baseDir);
  } catch (err) {
    if (err instanceof DaemonError) {
      out.error(err.message);
      return 1;
    }
    if (!(err instanceof ConfigError)) throw err;
    out.error(`${err.message}:\n${formatIssues(err.issues)}`);
    return 1;
  }
  const n = specs.size;
  out.log(`${abs}: ok, ${n} app${n === 1 ? '' : 's'}`);
  const width = Math.max(0, ...[...specs.keys()].map((name) => name.length));
  for (const spec of specs.values()) out.log(summarize(spec, width));
  return 0;
}

/** What etcd holds at the key now: a read that etcd does not answer is an error (no disk copy). */
async function loadFromEtcd(url: string): Promise<LoadedConfig> {
  const source = sourceFromEnv(url, createLogger({ proc: 'check' }, 'silent'), process.env);
  try {
    const snapshot = await source.read();
    if (source.status().servingFrom !== 'etcd') {
      throw new DaemonError('ERR_CONFIG_READ', `${source.describe()}: etcd did not answer (the daemon would serve its last good copy from disk; check reads etcd only): check the endpoints and the FPROXY_ETCD_* settings`);
    }
    return await loadConfig(snapshot.bytes, snapshot.baseDir, source.describe());
  } finally {
    (source as { close?: () => void }).close?.();
  }
}

/** `db2:5432(weight 3, backup)`; a plain target as written. */
function describeTarget(t: TargetSpec): string {
  const opts = [...((t.weight ?? 1) !== 1 ? [`weight ${t.weight}`] : []), ...(t.backup ? ['backup'] : [])];
  return opts.length === 0 ? t.raw : `${t.raw}(${opts.join(', ')})`;
}

/** `five-thousand  ports 5001,5200  targets 127.0.0.1:9001  connect 5000ms idle 3600000ms workers 2` (+ TLS details). */
export function summarize(spec: ListenerSpec, width = spec.app.length): string {
  const targets = spec.targets.length === 0 ? '(none)' : spec.targets.map(describeTarget).join(',');
  const parts = [
    spec.app.padEnd(width),
    `ports ${spec.ports.join(',')}${spec.listen !== undefined && spec.listen.length > 0 ? ` on ${spec.listen.join(',')}` : ''}`,
    `targets ${targets}`,
    `connect ${spec.connectTimeoutMs}ms idle ${spec.idleTimeoutMs}ms workers ${spec.workers}`,
  ];
  if (spec.tls) {
    const certs = spec.tls.certs.length;
    parts.push(`tls ${spec.tls.mode}${spec.tls.mode === 'terminate' ? ` (${certs} cert${certs === 1 ? '' : 's'})` : ''}`);
  }
  if (spec.routes.length > 0) parts.push(`routes ${spec.routes.length}`);
  if (spec.strategy !== 'round-robin') parts.push(`strategy ${spec.strategy}`);
  if (spec.outlierDetection === null) parts.push('outlier-detection off');
  if (spec.onTargetDown !== 'keep') parts.push(`on-target-down ${spec.onTargetDown}`);
  if (spec.acceptProxyProtocol) parts.push('accept-proxy');
  if (spec.sendProxyProtocol !== 'none') parts.push(`send-proxy ${spec.sendProxyProtocol}`);
  const hc = spec.healthCheck;
  if (hc !== null) {
    const kind = hc.httpPath !== null ? `http ${hc.httpPath}` : hc.send !== null || hc.expect !== null ? 'send/expect' : 'tcp';
    parts.push(`health ${kind}${hc.port === null ? '' : ` port ${hc.port}`} every ${hc.intervalMs}ms rise ${hc.rise} fall ${hc.fall}`);
  }
  return parts.join('  ');
}
