// `make cluster-check`: the full etcd cluster scenario (scripts/cluster-lib/scenario.ts) — 10
// convergence rounds, a partition under load, quorum loss and recovery, a restart from disk — then
// the figures as JSON. Exits 1 on any failed check; the lab is torn down either way (also on Ctrl-C).
import { labMissing } from './cluster-lib/netns-lab.ts';
import { runClusterScenario } from './cluster-lib/scenario.ts';

const missing = labMissing();
if (missing) {
  process.stderr.write(`cluster-check: cannot run: ${missing}\n`);
  process.exit(2);
}
const cleanups: (() => unknown)[] = [];
const cleanup = async (): Promise<void> => {
  for (const fn of cleanups.splice(0).reverse()) await fn();
};
process.once('SIGINT', () => void cleanup().then(() => process.exit(130)));
let code = 0;
try {
  const figures = await runClusterScenario({ after: (fn) => cleanups.push(fn) }, true, (line) => console.log(line));
  const all = figures.convergenceMs.flat().sort((a, b) => a - b);
  console.log(`convergence over ${figures.convergenceMs.length} writes × 3 daemons: min ${all[0]} ms, median ${all[Math.floor(all.length / 2)]} ms, max ${all.at(-1)} ms`);
  console.log(JSON.stringify(figures));
} catch (err) {
  console.error('cluster-check FAILED:', err);
  code = 1;
} finally {
  await cleanup();
}
process.exit(code);
