// The accept-path suite on the native engine (inline loop, the default): plain TCP apps are accepted, connected and forwarded
// in C, TypeScript deciding each connection. Skips, saying why, when the addon is not built.
import { test } from 'node:test';
import { acceptPathCase } from './accept-path.case.ts';
import { JsEngine } from './engine/js-engine.ts';
import { findAddon, NativeEngine } from './engine/native-engine.ts';

const addon = findAddon();
if (addon === undefined) test('accept path: native', { skip: 'build/native/forwarder.node is not built (make native needs a C compiler)' }, () => {});
else acceptPathCase('native', () => NativeEngine.get(new JsEngine(), 0, addon), true);
