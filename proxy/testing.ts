// Test support for the data plane, one module per concern under ./testing/ (this file only
// gathers them, so a test imports from one place): waiting (wait-for), echo targets, clients,
// ports that refuse or never answer, certificates and temp dirs, a listener per test, fuzz helpers.
// Used by *.test.ts and test support only.
export { waitFor } from './testing/wait-for.ts';
export { startEcho, startEchoTarget, startRecorder, startTlsEcho } from './testing/echo-target.ts';
export type { EchoTarget, EchoTargetOptions, Recorder, TlsTarget } from './testing/echo-target.ts';
export { choppedSocket, exchange, sClient, sClientSubject, slowClient, tlsExchange } from './testing/clients.ts';
export type { Exchange, SlowResult, TlsExchange } from './testing/clients.ts';
export { closedPort, closedPorts, startBlackhole } from './testing/ports.ts';
export { makeCert, tempDir } from './testing/certs.ts';
export type { TestCert } from './testing/certs.ts';
export { captureLogger, listen, makeSpec, targetSpec } from './testing/listen.ts';
export { assertFast, concat, parseBoth, prng, SLOW_MS } from './testing/fuzz.ts';
