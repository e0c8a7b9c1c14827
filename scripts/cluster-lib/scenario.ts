// The cluster scenario (issue 14 §3), shared by the test (short form, in `make test`) and
// `make cluster-check` (full form, prints the figures). Each step asserts behaviour with generous
// deadlines and records how long things actually took; the figures are what the check reports.
//   1. convergence: a write to etcd is served by all 3 daemons (ms from the write's reply)
//   2. partition: d3's control link down → it keeps serving its last config; a write made meanwhile
//      reaches it after the link is back (ms from link up); connections made/failed under load
//   3. quorum: 2 of 3 members stopped → every daemon serves, writes fail with a clear
//      error; a member returns → writes work again and every daemon converges
//   4. disk: all members stopped, d1 restarted → it serves its last good copy from disk and says
//      so in /status; members return → it converges on what etcd holds
import assert from 'node:assert/strict';
import { waitFor } from '../../proxy/testing/wait-for.ts';
import { Cluster, configFor } from './cluster.ts';
import type { Cleanup } from './cluster.ts';

type Counts = Record<string, { made: number; failed: number; lastError?: string }>;

export interface ClusterFigures {
  /** Per round: ms from the write's reply until each daemon served the new target. */
  convergenceMs: number[][];
  partition: { catchUpMs: number; load: Counts };
  quorum: { writeError: { code: string; message: string }; writeRecoveredMs: number; convergeMs: number[]; load: Counts };
  disk: { servingFrom: string; connected: boolean; reconvergeMs: number[] };
}

const GENEROUS = 15_000;

export async function runClusterScenario(cleanup: Cleanup, full: boolean, say: (line: string) => void = () => {}): Promise<ClusterFigures> {
  const cluster = new Cluster();
  const t0 = Date.now();
  await cluster.start(cleanup, configFor('A'));
  say(`cluster up in ${Date.now() - t0} ms: 3 etcd members, 3 daemons serving target A`);
  const all = [0, 1, 2];

  const write = (name: string) => cluster.call<{ at: number; version: string }>('write', { config: configFor(name) });
  const converge = async (name: string, since: number, nodes = all) => Promise.all(nodes.map((i) => cluster.until(i, name, since, GENEROUS)));

  // 1. convergence
  const convergenceMs: number[][] = [];
  const rounds = full ? 10 : 2;
  for (let r = 0; r < rounds; r++) {
    const name = r % 2 === 0 ? 'B' : 'A';
    const { at } = await write(name);
    convergenceMs.push(await converge(name, at));
  }
  say(`convergence (ms from the write's reply until each daemon serves the new target): ${convergenceMs.map((r) => r.join('/')).join(', ')}`);
  let current = rounds % 2 === 1 ? 'B' : 'A';

  // 2. partition d3 from etcd while all three serve under load
  await cluster.call('loadStart', { addrs: cluster.appAddrs() });
  cluster.lab.setControlLink(cluster.lab.daemons[2]!, false);
  await waitFor(async () => (await cluster.status(2)).source.connected === false, GENEROUS, 'd3 reports connected:false');
  const partitioned = 'C';
  const { at: cAt } = await write(partitioned);
  await converge(partitioned, cAt, [0, 1]);
  assert.equal(await cluster.probe(2), current, 'the partitioned daemon keeps serving its last config');
  const during = await cluster.status(2);
  assert.equal(during.source.connected, false);
  assert.ok((during.source.staleMs ?? 0) > 0, `status shows how stale d3's config is: ${JSON.stringify(during.source)}`);
  const upAt = Date.now();
  cluster.lab.setControlLink(cluster.lab.daemons[2]!, true);
  const catchUpMs = await cluster.until(2, partitioned, upAt, GENEROUS);
  const partitionLoad = await cluster.call<Counts>('loadStop');
  current = partitioned;
  say(`partition: d3 caught up ${catchUpMs} ms after its link came back; connections during the partition ${JSON.stringify(partitionLoad)}`);
  for (const [addr, c] of Object.entries(partitionLoad)) {
    assert.equal(c.failed, 0, `no connection failed through ${addr} (${c.lastError ?? ''})`);
    assert.ok(c.made > 0, `connections were made through ${addr}`);
  }

  // 3. no quorum: 2 of 3 members stopped
  await cluster.call('loadStart', { addrs: cluster.appAddrs() });
  await Promise.all([cluster.stopMember(1), cluster.stopMember(2)]);
  const writeError = await write('D').then(
    () => assert.fail('a write without quorum must fail'),
    (err: Error & { code: string }) => ({ code: err.code, message: err.message }),
  );
  assert.equal(writeError.code, 'ERR_CONFIG_WRITE');
  assert.match(writeError.message, /Cannot write the config to etcd key \/fproxy\/config .*quorum/);
  for (const i of all) assert.equal(await cluster.probe(i), current, `d${i + 1} keeps serving without quorum`);
  const backAt = Date.now();
  cluster.startMember(1);
  const { at: dAt } = await waitFor(() => write('D').catch(() => undefined), 60_000, 'a write succeeds once a member is back');
  const writeRecoveredMs = dAt - backAt;
  const convergeMs = await converge('D', dAt);
  current = 'D';
  cluster.startMember(2);
  await cluster.waitMembersHealthy(all);
  const quorumLoad = await cluster.call<Counts>('loadStop');
  for (const [addr, c] of Object.entries(quorumLoad)) assert.equal(c.failed, 0, `no connection failed through ${addr} without quorum (${c.lastError ?? ''})`);
  const quorum = { writeError, writeRecoveredMs, convergeMs, load: quorumLoad };
  say(`quorum lost: write failed with ${writeError.code}: ${writeError.message}`);
  say(`quorum back: first write ok ${writeRecoveredMs} ms after a member restarted; daemons converged in ${convergeMs.join('/')} ms; connections ${JSON.stringify(quorumLoad)}`);

  // 4. a daemon restarted while etcd is down serves its last good copy from disk
  await Promise.all(all.map((i) => cluster.stopMember(i)));
  await cluster.stopDaemon(0);
  cluster.startDaemon(0);
  const fromDisk = await waitFor(async () => {
    const s = await cluster.status(0).catch(() => undefined);
    return s?.source.servingFrom === 'disk' ? s : undefined;
  }, 60_000, 'd1 restarted while etcd is down serves from disk');
  assert.equal(fromDisk.source.connected, false);
  assert.equal(fromDisk.source.kind, 'etcd');
  await cluster.waitServing(0, current, GENEROUS);
  for (const i of [1, 2]) assert.equal(await cluster.probe(i), current, `d${i + 1} keeps serving with every member down`);
  for (const i of all) cluster.startMember(i);
  await cluster.waitMembersHealthy(all, 60_000);
  await waitFor(async () => {
    const s = await cluster.status(0);
    return s.source.connected && s.source.servingFrom === 'etcd';
  }, GENEROUS, 'd1 converges on etcd once it answers');
  const next = current === 'E' ? 'F' : 'E';
  const { at: eAt } = await write(next);
  const reconvergeMs = await converge(next, eAt);
  say(`disk: d1 restarted with etcd down served "${current}" from disk (servingFrom ${fromDisk.source.servingFrom}, revision ${fromDisk.source.revision}); after etcd returned every daemon applied a write in ${reconvergeMs.join('/')} ms`);

  return {
    convergenceMs,
    partition: { catchUpMs, load: partitionLoad },
    quorum,
    disk: { servingFrom: fromDisk.source.servingFrom ?? '', connected: fromDisk.source.connected, reconvergeMs },
  };
}
