// ConfigEdit: the admin API's changes to the config document, as pure functions of plain JSON
// (the document as stored, already parsed), plus the one formatting every write uses: 2-space
// JSON, keys in the schema's order (config.schema.json's order, so a diff of an API write against
// a hand edit shows only what changed), `$schema` kept. Each edit returns a new document and never
// validates: the caller validates the result with the config schema (every issue listed).
// Errors are AdminErrors: 404 unknown app, 409 target already present, 400 a target that is not
// host:port or an app body whose Name disagrees with the URL.
import { parseTarget } from '../../proxy/index.ts';
import { ConfigSchema } from '../config/schema.ts';
import { AdminError } from './router.ts';

export type Doc = Record<string, unknown> & { Apps: Record<string, unknown>[] };

/** The stored document, if it has the shape edits need ({"Apps": [objects…]}); else 409. */
export function editableDocument(value: unknown): Doc {
  if (isObject(value) && Array.isArray(value.Apps) && value.Apps.every(isObject)) return value as Doc;
  throw new AdminError(409, 'ERR_CONFIG_NOT_EDITABLE', 'Config not editable',
    'The stored config is not an object with an "Apps" array, so it cannot be edited piece by piece: fix it, or replace it whole with PUT /config');
}

/** The document's bytes as every write stores them. */
export function formatConfig(doc: unknown): Buffer {
  return Buffer.from(JSON.stringify(orderKeys(doc, ConfigSchema), null, 2) + '\n');
}

/** `next` with the `$schema` of `current` when it has none of its own (PUT /config keeps it). */
export function keepSchemaRef(next: unknown, current: unknown): unknown {
  if (!isObject(next) || !isObject(current) || '$schema' in next || typeof current.$schema !== 'string') return next;
  return { $schema: current.$schema, ...next };
}

export function findApp(doc: Doc, name: string): number {
  return doc.Apps.findIndex((a) => a.Name === name);
}

function requireApp(doc: Doc, name: string): number {
  const i = findApp(doc, name);
  if (i < 0) throw new AdminError(404, 'ERR_APP_NOT_FOUND', 'No such app', `No app named "${name}" in the config; apps: ${doc.Apps.map((a) => String(a.Name)).join(', ') || '(none)'}`);
  return i;
}

/** PUT /apps/{name}: replace the app of that name, or append it. */
export function putApp(doc: Doc, name: string, body: unknown): Doc {
  if (!isObject(body)) throw new AdminError(400, 'ERR_BODY_SHAPE', 'Invalid app', 'The body must be one app object, as an element of "Apps" in the config');
  if (body.Name !== undefined && body.Name !== name) {
    throw new AdminError(400, 'ERR_NAME_MISMATCH', 'Invalid app', `The body's Name ${JSON.stringify(body.Name)} is not the app in the URL ("${name}"): leave Name out or make them equal`);
  }
  const app = { ...body, Name: name };
  const i = findApp(doc, name);
  const apps = i < 0 ? [...doc.Apps, app] : doc.Apps.map((a, k) => (k === i ? app : a));
  return { ...doc, Apps: apps };
}

export function deleteApp(doc: Doc, name: string): Doc {
  const i = requireApp(doc, name);
  return { ...doc, Apps: doc.Apps.filter((_, k) => k !== i) };
}

/** "host:port" as written (trimmed), or 400 ERR_TARGET_INVALID saying why not. */
export function targetAddress(raw: unknown): string {
  if (typeof raw !== 'string') throw new AdminError(400, 'ERR_TARGET_INVALID', 'Invalid target', 'A target needs "Address": "host:port" (a string), as {"Address": "10.0.0.7:8080", "Weight": 2}');
  const parsed = parseTarget(raw.trim());
  if (!parsed.ok) throw new AdminError(400, 'ERR_TARGET_INVALID', 'Invalid target', `Target address ${JSON.stringify(raw)} is not host:port: ${parsed.reason}`);
  return raw.trim();
}

function addressOf(entry: unknown): string | undefined {
  if (typeof entry === 'string') return entry.trim();
  if (isObject(entry) && typeof entry.Address === 'string') return entry.Address.trim();
  return undefined;
}

/** POST /apps/{name}/targets: append to the app's Targets; 409 if that address is there already. */
export function addTarget(doc: Doc, name: string, body: unknown): Doc {
  if (!isObject(body)) throw new AdminError(400, 'ERR_BODY_SHAPE', 'Invalid target', 'The body must be a target object, as {"Address": "10.0.0.7:8080", "Weight": 2, "Backup": false}');
  const address = targetAddress(body.Address);
  const i = requireApp(doc, name);
  const app = doc.Apps[i]!;
  const targets = Array.isArray(app.Targets) ? app.Targets : [];
  if (targets.some((t) => addressOf(t) === address)) {
    throw new AdminError(409, 'ERR_TARGET_EXISTS', 'Target already present', `App "${name}" already has target ${address}: remove it first to change its options`);
  }
  // Only an address: the short form, as people write it by hand.
  const entry = Object.keys(body).length === 1 ? address : { ...body, Address: address };
  return { ...doc, Apps: doc.Apps.map((a, k) => (k === i ? { ...a, Targets: [...targets, entry] } : a)) };
}

/** DELETE /apps/{name}/targets/{address}: 404 when the app or the target is not there. */
export function removeTarget(doc: Doc, name: string, rawAddress: string): Doc {
  const address = targetAddress(rawAddress);
  const i = requireApp(doc, name);
  const app = doc.Apps[i]!;
  const targets = Array.isArray(app.Targets) ? app.Targets : [];
  if (!targets.some((t) => addressOf(t) === address)) {
    throw new AdminError(404, 'ERR_TARGET_NOT_FOUND', 'No such target', `App "${name}" has no target ${address} in Targets; it has ${targets.map(addressOf).join(', ') || '(none)'}`);
  }
  return { ...doc, Apps: doc.Apps.map((a, k) => (k === i ? { ...a, Targets: targets.filter((t) => addressOf(t) !== address) } : a)) };
}

interface ZodLike {
  _zod: { def: { type: string; shape?: Record<string, ZodLike>; element?: ZodLike; innerType?: ZodLike; options?: ZodLike[]; in?: ZodLike } };
}

/** `value` with every object's keys in the order its schema declares them (unknown keys last, as they were). */
export function orderKeys(value: unknown, schema: unknown): unknown {
  const def = (schema as ZodLike | undefined)?._zod?.def;
  if (def === undefined) return value;
  switch (def.type) {
    case 'optional':
    case 'nullable':
    case 'default':
    case 'readonly':
      return orderKeys(value, def.innerType);
    case 'pipe':
      return orderKeys(value, def.in);
    case 'array':
      return Array.isArray(value) ? value.map((v) => orderKeys(v, def.element)) : value;
    case 'union':
      // The option of the value's kind: objects take the object option (a target, OutlierDetection).
      return orderKeys(value, def.options?.find((o) => o._zod.def.type === (Array.isArray(value) ? 'array' : isObject(value) ? 'object' : '')));
    case 'object': {
      if (!isObject(value) || def.shape === undefined) return value;
      const out: Record<string, unknown> = {};
      for (const [key, child] of Object.entries(def.shape)) if (key in value) out[key] = orderKeys(value[key], child);
      for (const key of Object.keys(value)) if (!(key in out)) out[key] = value[key];
      return out;
    }
    default:
      return value;
  }
}

function isObject(v: unknown): v is Record<string, unknown> {
  return typeof v === 'object' && v !== null && !Array.isArray(v);
}
