// Validated app config → ListenerSpec: the one place defaults are applied (SPEC_DEFAULTS and
// HEALTH_CHECK_DEFAULTS, and the CPU count for Workers), targets are parsed, SNI names are lower-cased and cert paths are made
// absolute against the config file's directory. Pure apart from reading the CPU count and which
// engine the listeners will use (defaultWorkers).
// Invariant: the input passed validateConfig, so a target that does not parse is a bug, not a
// user error, and throws.
import { availableParallelism } from 'node:os';
import { resolve } from 'node:path';
import { HEALTH_CHECK_DEFAULTS, PER_SOURCE_DEFAULTS, SPEC_DEFAULTS, parseTarget } from '../../proxy/index.ts';
import { listenerThreads } from '../../proxy/engine/default-engine.ts';
import type { HealthCheckSpec, ListenerSpec, OutlierDetectionSpec, PerSourceSpec, RouteSpec, TargetSpec, TlsSpec } from '../../proxy/index.ts';
import type { AppConfig, Config, HealthCheckConfig, PerSourceConfig, RouteConfig, TargetConfig, TlsConfig } from './schema.ts';

/** The schema's upper bound on Workers; a bigger machine still defaults to this many. */
const MAX_WORKERS = 64;

/**
 * Workers when an app does not say: enough listener processes to use every core, counting the
 * threads each one forwards on (threadsPerListener: 2 with the native engine, Node's thread and its
 * offload thread; 1 with the JS engine). Fewer processes, because one process on two threads cost
 * less per request than two processes on one each: keep-alive 9.3-10.4 against 14.1-14.6 µs/req
 * on a 2-core machine (HAProxy, one process, 13.8-18.6 in the same rounds).
 */
export function defaultWorkers(cpus: number, threadsPerListener: number): number {
  return Math.min(MAX_WORKERS, Math.max(1, Math.ceil(cpus / Math.max(1, threadsPerListener))));
}

export function toListenerSpec(app: AppConfig, configDir: string): ListenerSpec {
  return {
    app: app.Name,
    ports: [...app.Ports],
    listen: [...(app.Listen ?? [])],
    targets: toTargets(app.Targets ?? [], app.Name),
    strategy: app.Strategy ?? SPEC_DEFAULTS.strategy,
    outlierDetection: toOutlier(app.OutlierDetection),
    onTargetDown: app.OnTargetDown ?? SPEC_DEFAULTS.onTargetDown,
    handOver: app.HandOver ?? SPEC_DEFAULTS.handOver,
    onTargetRemoved: app.OnTargetRemoved ?? SPEC_DEFAULTS.onTargetRemoved,
    connectTimeoutMs: app.ConnectTimeoutMs ?? SPEC_DEFAULTS.connectTimeoutMs,
    connectAttemptTimeoutMs: app.ConnectAttemptTimeoutMs ?? SPEC_DEFAULTS.connectAttemptTimeoutMs,
    idleTimeoutMs: app.IdleTimeoutMs ?? SPEC_DEFAULTS.idleTimeoutMs,
    drainTimeoutMs: app.DrainTimeoutMs ?? SPEC_DEFAULTS.drainTimeoutMs,
    handshakeTimeoutMs: app.HandshakeTimeoutMs ?? SPEC_DEFAULTS.handshakeTimeoutMs,
    ...(app.Tls === undefined ? {} : { tls: toTls(app.Tls, configDir) }),
    routes: (app.Routes ?? []).map((r) => toRoute(r, app.Name)),
    acceptProxyProtocol: app.AcceptProxyProtocol ?? SPEC_DEFAULTS.acceptProxyProtocol,
    accessLog: app.AccessLog ?? SPEC_DEFAULTS.accessLog,
    sendProxyProtocol: app.SendProxyProtocol ?? SPEC_DEFAULTS.sendProxyProtocol,
    workers: app.Workers ?? defaultWorkers(availableParallelism(), listenerThreads()),
    allow: app.Allow === undefined ? SPEC_DEFAULTS.allow : [...app.Allow],
    deny: app.Deny === undefined ? SPEC_DEFAULTS.deny : [...app.Deny],
    maxConnections: app.MaxConnections ?? SPEC_DEFAULTS.maxConnections,
    queueTimeoutMs: app.QueueTimeoutMs ?? SPEC_DEFAULTS.queueTimeoutMs,
    perSource: app.PerSource === undefined ? SPEC_DEFAULTS.perSource : toPerSource(app.PerSource),
    maxConnectionDurationMs: app.MaxConnectionDurationMs ?? SPEC_DEFAULTS.maxConnectionDurationMs,
    firstByteTimeoutMs: app.FirstByteTimeoutMs ?? SPEC_DEFAULTS.firstByteTimeoutMs,
    healthCheck: app.HealthCheck === undefined ? SPEC_DEFAULTS.healthCheck : toHealthCheck(app.HealthCheck),
  };
}

function toHealthCheck(hc: HealthCheckConfig): HealthCheckSpec {
  return {
    intervalMs: hc.IntervalMs,
    // A default timeout never exceeds the interval (a 200 ms interval gets a 200 ms timeout).
    timeoutMs: hc.TimeoutMs ?? Math.min(HEALTH_CHECK_DEFAULTS.timeoutMs, hc.IntervalMs),
    rise: hc.Rise ?? HEALTH_CHECK_DEFAULTS.rise,
    fall: hc.Fall ?? HEALTH_CHECK_DEFAULTS.fall,
    port: hc.Port ?? null,
    send: hc.Send ?? null,
    expect: hc.Expect ?? null,
    httpPath: hc.HttpPath ?? null,
    expectStatus: [...(hc.ExpectStatus ?? [])],
  };
}

/** By app name, in config order. */
export function toListenerSpecs(config: Config, configDir: string): Map<string, ListenerSpec> {
  return new Map(config.Apps.map((app) => [app.Name, toListenerSpec(app, configDir)]));
}

function toTargets(targets: readonly TargetConfig[], app: string): TargetSpec[] {
  return targets.map((t) => {
    const address = typeof t === 'string' ? t : t.Address;
    const parsed = parseTarget(address);
    if (!parsed.ok) throw new Error(`BUG: app "${app}" reached toListenerSpec with unparsable target "${address}" (${parsed.reason}); validate the config first`);
    if (typeof t === 'string') return { ...parsed.target, weight: 1, backup: false };
    const spec: TargetSpec = { ...parsed.target, weight: t.Weight ?? 1, backup: t.Backup ?? false };
    // Absent = no limit: the pool of a target without one keeps its unlimited fast path.
    return t.MaxConnections === undefined ? spec : { ...spec, maxConnections: t.MaxConnections };
  });
}

function toOutlier(o: AppConfig['OutlierDetection']): OutlierDetectionSpec | null {
  if (o === false) return null;
  const d = SPEC_DEFAULTS.outlierDetection;
  return {
    consecutiveFailures: o?.ConsecutiveFailures ?? d.consecutiveFailures,
    ejectMs: o?.EjectMs ?? d.ejectMs,
    maxEjectMs: Math.max(o?.MaxEjectMs ?? d.maxEjectMs, o?.EjectMs ?? d.ejectMs),
    maxEjectPercent: o?.MaxEjectPercent ?? d.maxEjectPercent,
  };
}

function toPerSource(p: PerSourceConfig): PerSourceSpec {
  const ratePerSecond = p.RatePerSecond ?? PER_SOURCE_DEFAULTS.ratePerSecond;
  return {
    maxConnections: p.MaxConnections ?? PER_SOURCE_DEFAULTS.maxConnections,
    ratePerSecond,
    burst: p.Burst ?? Math.max(1, Math.ceil(ratePerSecond)),
    prefix6: p.Prefix6 ?? PER_SOURCE_DEFAULTS.prefix6,
  };
}

function toTls(tls: TlsConfig, configDir: string): TlsSpec {
  return {
    mode: tls.Mode,
    certs: (tls.Certs ?? []).map((c) => ({ certPath: resolve(configDir, c.Cert), keyPath: resolve(configDir, c.Key) })),
  };
}

function toRoute(route: RouteConfig, app: string): RouteSpec {
  return {
    sni: route.Sni.map((name) => name.toLowerCase()),
    alpn: [...(route.Alpn ?? [])],
    targets: toTargets(route.Targets, app),
  };
}
