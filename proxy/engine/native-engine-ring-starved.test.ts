// The native engine's suite with one loop thread whose io_uring has a single provided buffer
// (FPROXY_ENGINE_RING_BUFS=1): while one direction holds it, every other recv finds none and is
// made again into a buffer of the pool. Each behaviour must hold all the same. Read by the loop
// thread as it starts, so it is set before anything loads the addon.
process.env.FPROXY_ENGINE_RING_BUFS = '1';
const { nativeEngineCase } = await import('./native-engine.case.ts');

nativeEngineCase(1);
