// Generates config.schema.json (repo root) from ConfigSchema, so editors validate config.json as
// you type. Run: `node daemon/config/write-schema.ts` (npm run schema). Output is stable: the same
// schema always gives the same bytes, and a test fails when the committed file has drifted.
import { writeFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { z } from 'zod';
import { ConfigSchema } from './schema.ts';

export const SCHEMA_FILE = fileURLToPath(new URL('../../config.schema.json', import.meta.url));

export function generateJsonSchema(): object {
  return z.toJSONSchema(ConfigSchema, { target: 'draft-2020-12' });
}

/** The file's exact contents: two-space JSON and a final newline. */
export function renderJsonSchema(): string {
  return `${JSON.stringify(generateJsonSchema(), null, 2)}\n`;
}

if (import.meta.main) {
  writeFileSync(SCHEMA_FILE, renderJsonSchema());
  console.log(`wrote ${SCHEMA_FILE}`);
}
