// The native engine's suite with one loop thread on epoll (FPROXY_ENGINE_URING=0): the loop
// threads' path where io_uring is missing or refused, kept exact. The engine reads the switch when
// its threads start, so it is set before anything loads the addon.
process.env.FPROXY_ENGINE_URING = '0';
const { nativeEngineCase } = await import('./native-engine.case.ts');

nativeEngineCase(1);
