import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { test } from 'node:test';
import { fileURLToPath } from 'node:url';
import { SPEC_DEFAULTS } from '../../proxy/index.ts';
import { validateConfigText } from './validate.ts';
import { SCHEMA_FILE, generateJsonSchema, renderJsonSchema } from './write-schema.ts';

test('config.schema.json is up to date with the schema (run `npm run schema` when this fails)', () => {
  const committed = readFileSync(SCHEMA_FILE, 'utf8');
  assert.deepEqual(JSON.parse(committed), generateJsonSchema());
  assert.equal(committed, renderJsonSchema(), 'same content, different formatting: regenerate it');
});

test('generation is stable', () => {
  assert.equal(renderJsonSchema(), renderJsonSchema());
});

test('every default lands in a description', () => {
  const text = renderJsonSchema();
  for (const value of [SPEC_DEFAULTS.connectTimeoutMs, SPEC_DEFAULTS.connectAttemptTimeoutMs, SPEC_DEFAULTS.idleTimeoutMs, SPEC_DEFAULTS.drainTimeoutMs, SPEC_DEFAULTS.handshakeTimeoutMs]) {
    assert.match(text, new RegExp(`Default ${value}\\b`));
  }
  assert.match(text, /Default \\"round-robin\\"/);
  assert.match(text, /Default: the number of CPUs/);
});

test('the shipped config.json points at the schema and is valid', () => {
  const text = readFileSync(fileURLToPath(new URL('../../config.json', import.meta.url)), 'utf8');
  const result = validateConfigText(text);
  assert.ok(result.ok, JSON.stringify(result));
  assert.equal(result.config.$schema, './config.schema.json');
});
