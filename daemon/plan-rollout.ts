// planRollout: the pure diff between the specs that run and the specs the config wants.
// Two specs are equal when their canonical JSON is equal (object keys sorted, array order kept:
// the order of ports and targets is part of the spec). Every app name lands in exactly one list;
// each list is sorted so plans are deterministic.
import type { ListenerSpec } from '../proxy/index.ts';

export interface RolloutPlan {
  /** In next only: start a first generation. */
  readonly start: string[];
  /** In prev only: drain and stop. */
  readonly stop: string[];
  /** In both with a different spec: start a new generation, then drain the old one. */
  readonly rollout: string[];
  /** In both with the same spec: leave alone (same pids). */
  readonly unchanged: string[];
}

export function planRollout(
  prev: ReadonlyMap<string, ListenerSpec>,
  next: ReadonlyMap<string, ListenerSpec>,
): RolloutPlan {
  const plan: RolloutPlan = { start: [], stop: [], rollout: [], unchanged: [] };
  for (const [name, spec] of next) {
    const old = prev.get(name);
    if (old === undefined) plan.start.push(name);
    else if (canonicalJson(old) === canonicalJson(spec)) plan.unchanged.push(name);
    else plan.rollout.push(name);
  }
  for (const name of prev.keys()) if (!next.has(name)) plan.stop.push(name);
  for (const list of Object.values(plan)) list.sort();
  return plan;
}

/** JSON with object keys sorted at every depth; undefined fields are left out, as JSON does. */
export function canonicalJson(value: unknown): string {
  return JSON.stringify(value, (_key, v: unknown) => {
    if (v === null || typeof v !== 'object' || Array.isArray(v)) return v;
    const sorted: Record<string, unknown> = {};
    for (const k of Object.keys(v).sort()) sorted[k] = (v as Record<string, unknown>)[k];
    return sorted;
  });
}
