// The public surface of the data plane: what the daemon and the CLI may import from proxy/.
export { Listener, ListenerError } from './listener.ts';
export { runStandalone } from './main.ts';
export { buildListenerEntry, LISTENER_SOURCE, type ListenerEntry } from './bundle.ts';
export { DnsCache } from './dns-cache.ts';
export type { ListenerSpec, TargetSpec, RouteSpec, TlsSpec, CertSpec, HealthCheckSpec, OutlierDetectionSpec, StrategySpec } from './spec.ts';
export { HEALTH_CHECK_DEFAULTS, OUTLIER_DEFAULTS, PER_SOURCE_DEFAULTS, SPEC_DEFAULTS, STRATEGY_NAMES } from './spec.ts';
export { parseTarget, type ParsedTarget, type TargetAddress } from './parse-target.ts';
export * from './ipc/protocol.ts';
export { parseCertPair, readProblem, type CertPair, type CertPairProblem, type ParsedCertPair } from './tls/cert-pair.ts';
export { createLogger, logLevelFromEnv, logLinesDropped, LogLevelError, type Logger } from './log.ts';
export { cidrProblem } from './protect/cidr-list.ts';
export { LimitAuthority } from './protect/limit-authority.ts';
export type { LimitSettings, ToHolder } from './protect/lease-messages.ts';
export type { PerSourceSpec } from './spec.ts';
export { DURATION_BUCKETS, emptyHistogram } from './metrics/fixed-histogram.ts';
