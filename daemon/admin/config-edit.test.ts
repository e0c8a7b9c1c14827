// ConfigEdit: the document edits the admin API makes, and the one format every write stores.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { addTarget, deleteApp, editableDocument, formatConfig, keepSchemaRef, putApp, removeTarget } from './config-edit.ts';

const doc = () => editableDocument({
  $schema: './config.schema.json',
  Apps: [{ Targets: ['127.0.0.1:9001'], Ports: [80], Name: 'web' }, { Name: 'db', Ports: [5432], Targets: [{ Weight: 2, Address: 'db1:5432' }] }],
});

const codeOf = (fn: () => unknown): [number, string] => {
  try {
    fn();
  } catch (err) {
    const e = err as { status: number; code: string };
    return [e.status, e.code];
  }
  return [0, 'no error'];
};

test('formatConfig: 2-space JSON, keys in the schema\'s order at every level, $schema first and kept, unknown keys last', () => {
  const text = formatConfig({ Apps: [{ Tls: { Certs: [{ Key: 'k', Cert: 'c' }], Mode: 'terminate' }, Targets: [{ Backup: true, Address: 'a:1' }, 'b:2'], Name: 'x', Ports: [1], Extra: 1 }], $schema: 's' }).toString();
  assert.equal(text, `{
  "$schema": "s",
  "Apps": [
    {
      "Name": "x",
      "Ports": [
        1
      ],
      "Targets": [
        {
          "Address": "a:1",
          "Backup": true
        },
        "b:2"
      ],
      "Tls": {
        "Mode": "terminate",
        "Certs": [
          {
            "Cert": "c",
            "Key": "k"
          }
        ]
      },
      "Extra": 1
    }
  ]
}
`);
});

test('keepSchemaRef keeps the stored $schema when a whole new document has none', () => {
  assert.deepEqual(keepSchemaRef({ Apps: [] }, { $schema: 'a', Apps: [] }), { $schema: 'a', Apps: [] });
  assert.deepEqual(keepSchemaRef({ $schema: 'b', Apps: [] }, { $schema: 'a' }), { $schema: 'b', Apps: [] });
});

test('addTarget appends the short form for an address alone, an object with options; 409 if present; 404 unknown app; 400 not host:port', () => {
  assert.deepEqual(addTarget(doc(), 'web', { Address: '127.0.0.1:9002' }).Apps[0]!.Targets, ['127.0.0.1:9001', '127.0.0.1:9002']);
  assert.deepEqual(addTarget(doc(), 'web', { Address: ' h:1 ', Weight: 3 }).Apps[0]!.Targets, ['127.0.0.1:9001', { Address: 'h:1', Weight: 3 }]);
  assert.deepEqual(codeOf(() => addTarget(doc(), 'web', { Address: '127.0.0.1:9001' })), [409, 'ERR_TARGET_EXISTS']);
  assert.deepEqual(codeOf(() => addTarget(doc(), 'db', { Address: 'db1:5432', Weight: 5 })), [409, 'ERR_TARGET_EXISTS']);
  assert.deepEqual(codeOf(() => addTarget(doc(), 'nope', { Address: 'h:1' })), [404, 'ERR_APP_NOT_FOUND']);
  for (const bad of ['h', 'h:0', 'h:99999', ':80', 1, undefined]) assert.deepEqual(codeOf(() => addTarget(doc(), 'web', { Address: bad })), [400, 'ERR_TARGET_INVALID'], String(bad));
  assert.deepEqual(codeOf(() => addTarget(doc(), 'web', 'h:1')), [400, 'ERR_BODY_SHAPE']);
});

test('removeTarget takes a short or an object target out; 404 when absent', () => {
  assert.deepEqual(removeTarget(doc(), 'web', '127.0.0.1:9001').Apps[0]!.Targets, []);
  assert.deepEqual(removeTarget(doc(), 'db', 'db1:5432').Apps[1]!.Targets, []);
  assert.deepEqual(codeOf(() => removeTarget(doc(), 'web', '127.0.0.1:9999')), [404, 'ERR_TARGET_NOT_FOUND']);
  assert.deepEqual(codeOf(() => removeTarget(doc(), 'web', 'garbage')), [400, 'ERR_TARGET_INVALID']);
});

test('putApp replaces in place or appends, taking the name from the URL; deleteApp removes; the input is never changed', () => {
  const d = doc();
  const before = JSON.stringify(d);
  assert.deepEqual(putApp(d, 'web', { Ports: [81], Targets: ['h:1'] }).Apps.map((a) => [a.Name, a.Ports]), [['web', [81]], ['db', [5432]]]);
  assert.deepEqual(putApp(d, 'new', { Ports: [82], Targets: ['h:1'] }).Apps.map((a) => a.Name), ['web', 'db', 'new']);
  assert.deepEqual(codeOf(() => putApp(d, 'web', { Name: 'other', Ports: [1] })), [400, 'ERR_NAME_MISMATCH']);
  assert.deepEqual(deleteApp(d, 'web').Apps.map((a) => a.Name), ['db']);
  assert.deepEqual(codeOf(() => deleteApp(d, 'nope')), [404, 'ERR_APP_NOT_FOUND']);
  assert.equal(JSON.stringify(d), before);
  assert.deepEqual(codeOf(() => editableDocument({ Apps: 1 })), [409, 'ERR_CONFIG_NOT_EDITABLE']);
});
