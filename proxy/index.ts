// The public surface of the data plane: what the daemon and the CLI may import from proxy/.
export { Listener, ListenerError } from './listener.ts';
export { runStandalone } from './main.ts';
export { buildListenerEntry, type ListenerEntry } from './bundle.ts';
export { DnsCache } from './dns-cache.ts';
export type { ListenerSpec, TargetSpec, RouteSpec, TlsSpec, CertSpec } from './spec.ts';
export { parseTarget, SPEC_DEFAULTS, OUTLIER_DEFAULTS, STRATEGY_NAMES } from './spec.ts';
export * from './ipc/protocol.ts';
export { createLogger, logLevelFromEnv, LogLevelError, type Logger } from './log.ts';
