// The etcd cluster check, short form (what `make test` runs): 3 etcd members and 3 daemons, each in
// its own network namespace created here; convergence, a partitioned daemon, quorum loss, a restart
// from disk. The full form (10 convergence rounds, figures printed) is `make cluster-check`. Needs root, iproute2 and etcd.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { labMissing } from './cluster-lib/netns-lab.ts';
import { runClusterScenario } from './cluster-lib/scenario.ts';

const skip = labMissing();

test('etcd cluster: writes reach every daemon, a partitioned daemon keeps serving and catches up, no quorum → writes fail and traffic goes on, a restart while etcd is down serves from disk', { skip, timeout: 180_000 }, async (t) => {
  const figures = await runClusterScenario(t, false, (line) => t.diagnostic(line));
  assert.equal(figures.disk.servingFrom, 'disk');
});
