import { runPoolCases } from './pool.case.ts';

runPoolCases('random-two', { weighted: true });
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { fixture } from './pool.case.ts';

test('random-two: of two draws, takes the less loaded: a loaded target gets few new connections', () => {
  const f = fixture('random-two', ['a:1', 'b:1', 'c:1', 'd:1']);
  const a = f.table.get('a:1')!;
  a.activeConnections = 50;
  const counts = new Map<string, number>();
  for (let k = 0; k < 3000; k++) {
    const s = f.pool.entries[f.pool.pick(undefined, null)]!.state;
    f.pool.release(s);
    counts.set(s.raw, (counts.get(s.raw) ?? 0) + 1);
  }
  // `a` wins only when drawn against itself, which two distinct draws never do.
  assert.equal(counts.get('a:1'), undefined);
  for (const t of ['b:1', 'c:1', 'd:1']) assert.ok((counts.get(t) ?? 0) > 800, `${t}: ${counts.get(t)}`);
});
