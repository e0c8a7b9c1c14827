// Which engine a process gets: FPROXY_ENGINE=js forces JS; a missing or unloadable addon falls back
// to JS with one warning; otherwise native. Each case runs in a child process (the choice is made
// once per process).
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { findAddon } from './native-engine.ts';

const script = `
import { defaultEngine } from ${JSON.stringify(fileURLToPath(new URL('./default-engine.ts', import.meta.url)))};
const first = defaultEngine();
const second = defaultEngine();
console.log(JSON.stringify({ kind: first.engine.kind, warning: first.warning ?? null, again: second.warning ?? null, same: first.engine === second.engine }));
`;

function choose(env: NodeJS.ProcessEnv): Promise<{ kind: string; warning: string | null; again: string | null; same: boolean }> {
  return new Promise((resolve, reject) => {
    const clean = { ...process.env, ...env };
    delete clean.NODE_TEST_CONTEXT;
    for (const [k, v] of Object.entries(env)) if (v === undefined) delete clean[k];
    execFile(process.execPath, ['--input-type=module', '-e', script], { env: clean, timeout: 30_000 }, (err, stdout) => {
      if (err) return reject(err);
      resolve(JSON.parse(stdout.trim().split('\n').pop()!));
    });
  });
}

test('FPROXY_ENGINE=js forces the js engine, without a warning', async () => {
  assert.deepEqual(await choose({ FPROXY_ENGINE: 'js' }), { kind: 'js', warning: null, again: null, same: true });
});

test('a missing addon means the js engine and one warning (not repeated)', async () => {
  const r = await choose({ FPROXY_ENGINE: undefined, FPROXY_ENGINE_ADDON: '/nonexistent/forwarder.node' });
  assert.equal(r.kind, 'js');
  assert.match(r.warning ?? '', /native engine unavailable .*using the js engine/);
  assert.equal(r.again, null);
});

test('an unknown FPROXY_ENGINE value is named in the warning', async () => {
  const r = await choose({ FPROXY_ENGINE: 'turbo' });
  assert.equal(r.kind, 'js');
  assert.match(r.warning ?? '', /FPROXY_ENGINE="turbo"/);
});

test('the built addon gives the native engine', { skip: findAddon() === undefined ? 'addon not built (make native)' : false }, async () => {
  assert.deepEqual(await choose({ FPROXY_ENGINE: undefined, FPROXY_ENGINE_ADDON: undefined }), { kind: 'native', warning: null, again: null, same: true });
});
