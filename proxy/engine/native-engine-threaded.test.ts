// The native engine's suite with one engine loop thread (FPROXY_ENGINE_THREADS=1).
import { nativeEngineCase } from './native-engine.case.ts';

nativeEngineCase(1);
