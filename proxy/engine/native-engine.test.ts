// The native engine's suite with the default inline loop (on Node's own thread).
import { nativeEngineCase } from './native-engine.case.ts';

nativeEngineCase(0);
