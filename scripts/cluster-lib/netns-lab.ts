// NetnsLab: a private network made of network namespaces, for the etcd cluster checks. Every node
// (3 etcd members, 3 daemons) gets its own namespace; a hub namespace holds two bridges:
//   control 10.213.1.0/24 (etcd members .11-.13, daemons .21-.23, hub .254): etcd traffic
//   data    10.213.2.0/24 (daemons .21-.23, hub .254): clients, targets and admin endpoints
// so cutting a daemon's control link partitions it from etcd while clients can still reach it.
// Every veth end is created directly inside its namespace (nothing appears in the host's), names
// carry the creating pid so runs never collide, and dispose() kills what runs in the namespaces
// (by pid, from `ip netns pids`) and deletes them. Needs root and iproute2.
import { spawnSync } from 'node:child_process';

export interface LabNode {
  readonly ns: string;
  /** Address on the control network (etcd traffic). */
  readonly control: string;
  /** Address on the data network (daemons only). */
  readonly data?: string;
}

export const CONTROL_HUB = '10.213.1.254';
export const DATA_HUB = '10.213.2.254';

/** Why the lab cannot be built here, or undefined. */
export function labMissing(): string | undefined {
  if (process.getuid?.() !== 0) return 'needs root (network namespaces and veth pairs)';
  if (spawnSync('ip', ['-V']).status !== 0) return 'needs iproute2 (`ip`)';
  if (spawnSync('etcd', ['--version']).status !== 0) return 'needs etcd (make deps installs Debian etcd-server)';
  return undefined;
}

export class NetnsLab {
  readonly prefix: string;
  readonly hub: string;
  readonly etcd: LabNode[] = [];
  readonly daemons: LabNode[] = [];
  readonly #namespaces: string[] = [];

  constructor(prefix = `fxlab${process.pid}`) {
    this.prefix = prefix;
    this.hub = `${prefix}-hub`;
  }

  /** Builds hub + `members` etcd namespaces + `daemons` daemon namespaces. On failure, undo with dispose(). */
  build(members: number, daemons: number): void {
    sweepStaleLabs();
    this.#addNs(this.hub);
    ip('-n', this.hub, 'link', 'set', 'lo', 'up');
    for (const [br, addr] of [['bctl', CONTROL_HUB], ['bdata', DATA_HUB]] as const) {
      ip('-n', this.hub, 'link', 'add', br, 'type', 'bridge');
      ip('-n', this.hub, 'addr', 'add', `${addr}/24`, 'dev', br);
      ip('-n', this.hub, 'link', 'set', br, 'up');
    }
    for (let i = 1; i <= members; i++) {
      const ns = `${this.prefix}-e${i}`;
      this.#addNs(ns);
      this.#link(ns, 'c0', `e${i}`, 'bctl', `10.213.1.${10 + i}`);
      this.etcd.push({ ns, control: `10.213.1.${10 + i}` });
    }
    for (let i = 1; i <= daemons; i++) {
      const ns = `${this.prefix}-d${i}`;
      this.#addNs(ns);
      this.#link(ns, 'c0', `d${i}c`, 'bctl', `10.213.1.${20 + i}`);
      this.#link(ns, 'd0', `d${i}d`, 'bdata', `10.213.2.${20 + i}`);
      this.daemons.push({ ns, control: `10.213.1.${20 + i}`, data: `10.213.2.${20 + i}` });
    }
  }

  /** Cut (down) or restore (up) a node's control link: the node is partitioned from etcd. */
  setControlLink(node: LabNode, up: boolean): void {
    ip('-n', node.ns, 'link', 'set', 'c0', up ? 'up' : 'down');
  }

  /** Kill every process left in the lab's namespaces (by pid), then delete them. Never throws. */
  dispose(): void {
    for (const ns of [...this.#namespaces].reverse()) {
      const pids = spawnSync('ip', ['netns', 'pids', ns], { encoding: 'utf8' }).stdout?.split('\n').map(Number).filter((n) => n > 0) ?? [];
      for (const pid of pids) {
        try {
          process.kill(pid, 'SIGKILL');
        } catch {
          // already gone
        }
      }
      spawnSync('ip', ['netns', 'del', ns]);
    }
    this.#namespaces.length = 0;
  }

  /** Take over an existing namespace of this lab (sweeping a dead run's leftovers). */
  adopt(ns: string): void {
    this.#namespaces.push(ns);
  }

  #addNs(ns: string): void {
    ip('netns', 'add', ns);
    this.#namespaces.push(ns);
    ip('-n', ns, 'link', 'set', 'lo', 'up');
  }

  /** A veth pair: `inner` inside `ns` with `addr`/24, `outer` inside the hub on `bridge`. */
  #link(ns: string, inner: string, outer: string, bridge: string, addr: string): void {
    ip('link', 'add', inner, 'netns', ns, 'type', 'veth', 'peer', 'name', outer, 'netns', this.hub);
    ip('-n', this.hub, 'link', 'set', outer, 'master', bridge, 'up');
    ip('-n', ns, 'addr', 'add', `${addr}/24`, 'dev', inner);
    ip('-n', ns, 'link', 'set', inner, 'up');
  }
}

function ip(...args: string[]): void {
  const r = spawnSync('ip', args, { encoding: 'utf8' });
  if (r.status !== 0) throw new Error(`ip ${args.join(' ')} failed: ${(r.stderr || r.error?.message || '').trim()}`);
}

/**
 * Namespaces left by a lab whose process died without cleaning up (killed by a timeout): names
 * `fxlab<pid>-…` whose pid no longer runs. Only this harness's own names are touched.
 */
export function sweepStaleLabs(): void {
  const names = spawnSync('ip', ['netns', 'list'], { encoding: 'utf8' }).stdout?.split('\n').map((l) => l.split(' ')[0] ?? '') ?? [];
  const stale = new Map<number, string[]>();
  for (const name of names) {
    const m = /^fxlab(\d+)-/.exec(name);
    if (m === null || Number(m[1]) === process.pid || alive(Number(m[1]))) continue;
    stale.set(Number(m[1]), [...(stale.get(Number(m[1])) ?? []), name]);
  }
  for (const [pid, list] of stale) {
    const lab = new NetnsLab(`fxlab${pid}`);
    for (const ns of list) lab.adopt(ns);
    lab.dispose();
  }
}

function alive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch {
    return false;
  }
}
