// Router: maps a ClientHello's SNI (and ALPN) to a target pool, or the app's default pool.
// Matching, as Traefik's HostSNI and nginx's ssl_preread maps: exact names first, then `*.suffix`
// wildcards from the most specific (longest suffix) down, case-insensitive. A route with an ALPN
// list only matches a client that offers one of those protocols; otherwise matching goes on to the
// next less specific route. No match → the default pool (the app's Targets), which may be empty.
// Pure; one TargetPool per route, built once over the listener's TargetTable. The router only
// chooses the pool; the pool chooses the target.
import type { TargetPool } from './pool/target-pool.ts';
import { TargetTable } from './pool/target-table.ts';
import type { RouteSpec, TargetSpec } from './spec.ts';

interface CompiledRoute {
  readonly alpn: readonly string[];
  readonly pool: TargetPool;
}

export class Router {
  readonly defaultPool: TargetPool;
  readonly #exact = new Map<string, CompiledRoute[]>();
  /** Wildcard suffix (".a.example.test") → routes; looked up from the longest suffix. */
  readonly #wild = new Map<string, CompiledRoute[]>();
  readonly #hasRoutes: boolean;

  constructor(defaultTargets: readonly TargetSpec[], routes: readonly RouteSpec[], table = new TargetTable({ strategy: 'round-robin', outlierDetection: null })) {
    this.defaultPool = table.pool('default', defaultTargets);
    this.#hasRoutes = routes.length > 0;
    for (const r of routes) {
      const compiled: CompiledRoute = { alpn: r.alpn, pool: table.pool(r.sni[0] ?? 'route', r.targets) };
      for (const raw of r.sni) {
        const name = raw.toLowerCase();
        const map = name.startsWith('*.') ? this.#wild : this.#exact;
        const key = name.startsWith('*.') ? name.slice(1) : name;
        const list = map.get(key);
        if (list) list.push(compiled);
        else map.set(key, [compiled]);
      }
    }
  }

  /** The pool for this SNI/ALPN; the default pool when nothing matches. */
  pool(sni: string | undefined, alpn: readonly string[]): TargetPool {
    if (!this.#hasRoutes || sni === undefined) return this.defaultPool;
    const name = sni.toLowerCase();
    const exact = matchAlpn(this.#exact.get(name), alpn);
    if (exact) return exact;
    // "*.a.example.test" matches "x.a.example.test" and "y.x.a.example.test", not "a.example.test".
    for (let dot = name.indexOf('.'); dot >= 0; dot = name.indexOf('.', dot + 1)) {
      const hit = matchAlpn(this.#wild.get(name.slice(dot)), alpn);
      if (hit) return hit;
    }
    return this.defaultPool;
  }
}

function matchAlpn(routes: CompiledRoute[] | undefined, offered: readonly string[]): TargetPool | undefined {
  if (routes === undefined) return undefined;
  for (const r of routes) {
    if (r.alpn.length === 0) return r.pool;
    for (const p of offered) if (r.alpn.includes(p)) return r.pool;
  }
  return undefined;
}
