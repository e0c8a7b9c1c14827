// Rollouts lose no queued connection: connections waiting in the old generation's accept queue
// when its listening socket closes are migrated by the kernel (tcp_migrate_req, which the daemon
// turns on at start) to the new generation, which serves them.
// Runs only inside the network namespace accept-queue.test.ts creates: the sysctl the daemon flips
// and the TcpExt counters read here are that namespace's own, never the host's.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readdirSync, readFileSync } from 'node:fs';
import { exchange, startEcho } from '../proxy/testing.ts';
import { MIGRATE_REQ_PATH } from './migrate-req.ts';
import { appConfig, startTestDaemon, waitFor } from './testing.ts';

function migrateCounters(): { success: number; failure: number } {
  const lines = readFileSync('/proc/net/netstat', 'utf8').split('\n').filter((l) => l.startsWith('TcpExt:'));
  const keys = lines[0]!.split(/\s+/);
  const values = lines[1]!.split(/\s+/).map(Number);
  return { success: values[keys.indexOf('TCPMigrateReqSuccess')]!, failure: values[keys.indexOf('TCPMigrateReqFailure')]! };
}

test('connections queued on the old generation are served by the new one', async (t) => {
  const [oldTarget, newTarget] = await Promise.all([startEcho('old'), startEcho('new')]);
  t.after(async () => void (await Promise.all([oldTarget.close(), newTarget.close()])));
  // Inside the test's own network namespace: the daemon may (must) turn the sysctl on.
  const d = await startTestDaemon(t, { Apps: [appConfig('alpha', [0], [oldTarget.port])] }, { env: { FPROXY_MIGRATE_REQ: 'set' } });
  const status = await waitFor(async () => {
    const s = await d.status();
    return s.apps[0]?.state === 'running' ? s : undefined;
  }, 20_000, 'alpha running');
  const port = status.apps[0]!.ports[0]!;
  assert.equal(status.migrateReq.enabled, true, `the daemon turns tcp_migrate_req on (${status.migrateReq.reason ?? ''})`);
  assert.equal(readFileSync(MIGRATE_REQ_PATH, 'utf8').trim(), '1');
  const oldPid = status.apps[0]!.pids[0]!;

  // Freeze the old listener so connections pile up in its accept queue, completed by the kernel.
  // Every thread must be stopped before the first connection: SIGSTOP stops a process's threads
  // one by one, and the native engine accepts on a thread of its own, which can take connections
  // in between (they would then die with the process instead of migrating).
  process.kill(oldPid, 'SIGSTOP');
  await waitFor(() => readdirSync(`/proc/${oldPid}/task`).every((tid) => /^State:\s+T/m.test(readFileSync(`/proc/${oldPid}/task/${tid}/status`, 'utf8'))), 20_000, 'every thread of the old listener stopped');
  t.after(() => {
    try {
      process.kill(oldPid, 'SIGKILL');
    } catch {}
  });
  const before = migrateCounters();
  const queued = Array.from({ length: 40 }, (_, i) => exchange(port, `q${i}`, '127.0.0.1', 30_000));

  // Roll out: the new generation binds next to the frozen one and reports ready.
  await d.writeConfig({ Apps: [appConfig('alpha', [0], [newTarget.port])] });
  await waitFor(async () => (await d.app('alpha'))?.generation === 2, 30_000, 'generation 2 ready');
  // The old listener's socket closes with the queue still full (it never accepted any of them).
  process.kill(oldPid, 'SIGKILL');

  const replies = await Promise.all(queued);
  const failed = replies.filter((r, i) => r.reply !== `new:q${i}`);
  assert.deepEqual(failed, [], 'every queued connection was served, by the new generation');
  const after = migrateCounters();
  assert.ok(after.success - before.success >= queued.length, `kernel migrated ${after.success - before.success} requests (want ≥ ${queued.length})`);
  assert.equal(oldTarget.connections, 0, 'the old generation served none of them');
});
