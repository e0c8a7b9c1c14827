// The accept-path suite on the native engine (one engine loop thread): plain TCP apps are accepted, connected and forwarded
// in C, TypeScript deciding each connection. Skips, saying why, when the addon is not built.
import { test } from 'node:test';
import { acceptPathCase } from './accept-path.case.ts';
import { JsEngine } from './engine/js-engine.ts';
import { findAddon, NativeEngine } from './engine/native-engine.ts';

const addon = findAddon();
if (addon === undefined) test('accept path: native (1 loop thread)', { skip: 'build/native/forwarder.node is not built (make native needs a C compiler)' }, () => {});
else acceptPathCase('native (1 loop thread)', () => NativeEngine.get(new JsEngine(), 1, addon), true);
