// Validated app config → ListenerSpec: the one place defaults are applied (SPEC_DEFAULTS, and the
// CPU count for Workers), targets are parsed, SNI names are lower-cased and cert paths are made
// absolute against the config file's directory. Pure apart from reading the CPU count.
// Invariant: the input passed validateConfig, so a target that does not parse is a bug, not a
// user error, and throws.
import { availableParallelism } from 'node:os';
import { resolve } from 'node:path';
import { SPEC_DEFAULTS, parseTarget } from '../../proxy/spec.ts';
import type { ListenerSpec, RouteSpec, TargetSpec, TlsSpec } from '../../proxy/spec.ts';
import type { AppConfig, Config, RouteConfig, TlsConfig } from './schema.ts';

/** The schema's upper bound on Workers; a bigger machine still defaults to this many. */
const MAX_WORKERS = 64;

export function toListenerSpec(app: AppConfig, configDir: string): ListenerSpec {
  return {
    app: app.Name,
    ports: [...app.Ports],
    targets: toTargets(app.Targets ?? [], app.Name),
    strategy: app.Strategy ?? SPEC_DEFAULTS.strategy,
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
    workers: app.Workers ?? Math.min(MAX_WORKERS, availableParallelism()),
  };
}

/** By app name, in config order. */
export function toListenerSpecs(config: Config, configDir: string): Map<string, ListenerSpec> {
  return new Map(config.Apps.map((app) => [app.Name, toListenerSpec(app, configDir)]));
}

function toTargets(raw: readonly string[], app: string): TargetSpec[] {
  return raw.map((t) => {
    const target = parseTarget(t);
    if (target === undefined) throw new Error(`BUG: app "${app}" reached toListenerSpec with unparsable target "${t}"; validate the config first`);
    return target;
  });
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
