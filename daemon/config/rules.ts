// Config rules that span several keys or apps, checked beside the schema: an app needs targets or
// routes, routes need Tls, Certs go with Mode "terminate" only, a port or app name is used once,
// an SNI name is not routed twice for the same ALPN, a pool lists a target once, a target listed in
// several pools has the same MaxConnections in each, MaxEjectMs is at
// least EjectMs, a HealthCheck is one kind of probe with a timeout within its interval. Pure.
// Invariant: these run on the raw JSON even when the schema found problems (so one run reports
// everything), so every read is defensive, and a value the schema rejects (a bad port, a bad SNI
// name) is skipped here: the schema already said what is wrong with it.
import { parseTarget } from '../../proxy/index.ts';
import { sniNameProblem } from './host-name.ts';
import { formatPath } from './issue-path.ts';
import type { PathIssue, PathSegment } from './issue-path.ts';

type Json = Record<string, unknown>;

export function checkRules(json: unknown): PathIssue[] {
  const issues: PathIssue[] = [];
  if (!isObject(json) || !Array.isArray(json.Apps)) return issues;
  const apps = json.Apps;
  const names = new Map<string, number>();
  const ports = new Map<number, { app: number; index: number }>();
  apps.forEach((app, i) => {
    if (!isObject(app)) return;
    const at = (...rest: PathSegment[]): PathSegment[] => ['Apps', i, ...rest];
    checkTargetsOrRoutes(app, at, issues);
    checkDuplicateTargets(app.Targets, at('Targets'), issues);
    if (Array.isArray(app.Routes)) app.Routes.forEach((r, k) => { if (isObject(r)) checkDuplicateTargets(r.Targets, at('Routes', k, 'Targets'), issues); });
    checkTargetLimits(app, at, issues);
    checkOutlierDetection(app.OutlierDetection, at('OutlierDetection'), issues);
    checkTls(app, at, issues);
    checkSniOverlap(app, at, issues);
    checkHealthCheck(app, at, issues);
    checkLimits(app, at, issues);

    const name = app.Name;
    if (typeof name === 'string') {
      const first = names.get(name);
      if (first === undefined) names.set(name, i);
      else issues.push({ path: at('Name'), message: `app name "${name}" is already used by Apps[${first}]: names must be unique` });
    }

    if (!Array.isArray(app.Ports)) return;
    const own = new Map<number, number>();
    app.Ports.forEach((port, j) => {
      // 0 asks the kernel for a free port: several 0s never clash.
      if (!isPort(port)) return;
      const twice = own.get(port);
      if (twice !== undefined) {
        issues.push({ path: at('Ports', j), message: `port ${port} is listed twice (also Ports[${twice}]): remove one` });
        return;
      }
      own.set(port, j);
      const other = ports.get(port);
      if (other === undefined) {
        ports.set(port, { app: i, index: j });
        return;
      }
      const otherName = appLabel(apps[other.app], other.app);
      issues.push({
        path: at('Ports', j),
        message: `port ${port} of app ${appLabel(app, i)} is already used by app ${otherName} (Apps[${other.app}].Ports[${other.index}]): each port belongs to one app`,
      });
    });
  });
  return issues;
}

function checkTargetsOrRoutes(app: Json, at: (...rest: PathSegment[]) => PathSegment[], issues: PathIssue[]): void {
  if (app.Routes !== undefined) {
    if (app.Tls === undefined) {
      issues.push({
        path: at('Routes'),
        message: 'Routes match on the TLS server name, so they need Tls: add "Tls": {"Mode": "passthrough"} (or "terminate" with Certs)',
      });
    }
    return;
  }
  if (app.Targets === undefined) {
    issues.push({ path: at('Targets'), message: 'is required: list where to send connections, as in ["10.0.0.7:5432"]', missing: true });
  } else if (Array.isArray(app.Targets) && app.Targets.length === 0) {
    issues.push({ path: at('Targets'), message: 'is empty: add at least one "host:port" target (only an app with Routes may have none)' });
  }
}

/**
 * A pool lists a target once: its state (health, connections) is kept per target, so a second entry
 * would not double its share; Weight does that.
 */
function checkDuplicateTargets(targets: unknown, at: PathSegment[], issues: PathIssue[]): void {
  if (!Array.isArray(targets)) return;
  const seen = new Map<string, number>();
  targets.forEach((t, i) => {
    const address = typeof t === 'string' ? t : isObject(t) && typeof t.Address === 'string' ? t.Address : undefined;
    if (address === undefined || !parseTarget(address).ok) return;
    const first = seen.get(address);
    if (first === undefined) {
      seen.set(address, i);
      return;
    }
    issues.push({ path: [...at, i], message: `target "${address}" is listed twice in this pool (also ${formatPath([at[at.length - 1]!, first])}): remove one, or give it a "Weight"` });
  });
}

/**
 * A target's connections are counted once per process, whichever pool picked it, so it has one
 * MaxConnections: every pool that lists it says the same (or none everywhere).
 */
function checkTargetLimits(app: Json, at: (...rest: PathSegment[]) => PathSegment[], issues: PathIssue[]): void {
  const pools: { targets: unknown; path: PathSegment[] }[] = [{ targets: app.Targets, path: at('Targets') }];
  if (Array.isArray(app.Routes)) app.Routes.forEach((r, k) => { if (isObject(r)) pools.push({ targets: r.Targets, path: at('Routes', k, 'Targets') }); });
  const seen = new Map<string, { max: unknown; path: PathSegment[] }>();
  for (const { targets, path } of pools) {
    if (!Array.isArray(targets)) continue;
    targets.forEach((t, i) => {
      const address = typeof t === 'string' ? t : isObject(t) && typeof t.Address === 'string' ? t.Address : undefined;
      if (address === undefined || !parseTarget(address).ok) return;
      const max = isObject(t) ? t.MaxConnections : undefined;
      const first = seen.get(address);
      if (first === undefined) {
        seen.set(address, { max, path: [...path, i] });
        return;
      }
      if (first.max === max) return;
      const say = (v: unknown) => (v === undefined ? 'no MaxConnections' : `MaxConnections ${String(v)}`);
      issues.push({
        path: [...path, i],
        message: `target "${address}" has ${say(max)} here but ${say(first.max)} in ${formatPath(first.path)}: a target's connections are counted once whichever pool picks it, so give it the same MaxConnections everywhere`,
      });
    });
  }
}

function checkOutlierDetection(o: unknown, at: PathSegment[], issues: PathIssue[]): void {
  if (!isObject(o) || !Number.isInteger(o.EjectMs) || !Number.isInteger(o.MaxEjectMs)) return;
  if ((o.MaxEjectMs as number) < (o.EjectMs as number)) {
    issues.push({ path: [...at, 'MaxEjectMs'], message: `is ${String(o.MaxEjectMs)}, less than EjectMs (${String(o.EjectMs)}): the doubled ejection time is capped here, so it must be at least EjectMs` });
  }
}

function checkTls(app: Json, at: (...rest: PathSegment[]) => PathSegment[], issues: PathIssue[]): void {
  const tls = app.Tls;
  if (!isObject(tls)) return;
  if (tls.Mode === 'terminate' && tls.Certs === undefined) {
    issues.push({
      path: at('Tls', 'Certs'),
      message: 'is required with Mode "terminate": add "Certs": [{"Cert": "cert.pem", "Key": "key.pem"}]',
    });
  }
  if (tls.Mode === 'passthrough' && tls.Certs !== undefined) {
    issues.push({
      path: at('Tls', 'Certs'),
      message: 'is only used with Mode "terminate" (passthrough forwards the client\'s TLS untouched): remove Certs or set "Mode": "terminate"',
      replaces: true,
    });
  }
}

/**
 * Routes are tried in order for a name (proxy/router.ts): a later route with the same SNI name is
 * unreachable when an earlier one takes any ALPN, or takes one of the ALPN ids it lists.
 */
function checkSniOverlap(app: Json, at: (...rest: PathSegment[]) => PathSegment[], issues: PathIssue[]): void {
  if (!Array.isArray(app.Routes)) return;
  const seen = new Map<string, { route: number; sni: number; alpn: readonly string[] }[]>();
  app.Routes.forEach((route, r) => {
    if (!isObject(route) || !Array.isArray(route.Sni)) return;
    const alpn = Array.isArray(route.Alpn) ? route.Alpn.filter((p): p is string => typeof p === 'string') : [];
    route.Sni.forEach((name, s) => {
      if (typeof name !== 'string' || sniNameProblem(name) !== undefined) return;
      const key = name.toLowerCase();
      const earlier = seen.get(key) ?? [];
      const clash = earlier.find((e) => e.route === r || e.alpn.length === 0 || alpn.some((p) => e.alpn.includes(p)));
      if (clash === undefined) {
        seen.set(key, [...earlier, { route: r, sni: s, alpn }]);
        return;
      }
      const where = formatPath(['Routes', clash.route, 'Sni', clash.sni]);
      issues.push({
        path: at('Routes', r, 'Sni', s),
        message:
          clash.route === r
            ? `SNI name "${name}" is listed twice in this route (also ${where}): remove one`
            : `SNI name "${name}" is already routed by ${where}, so this route would never see it: remove it, or give the two routes Alpn lists that do not overlap`,
      });
    });
  });
}

/** HealthCheck: one kind of probe (HTTP or Send/Expect), statuses only for HTTP, a timeout within the interval. */
function checkHealthCheck(app: Json, at: (...rest: PathSegment[]) => PathSegment[], issues: PathIssue[]): void {
  const hc = app.HealthCheck;
  if (!isObject(hc)) return;
  const where = (key: string): PathSegment[] => at('HealthCheck', key);
  if (hc.HttpPath !== undefined) {
    for (const key of ['Send', 'Expect']) {
      if (hc[key] === undefined) continue;
      issues.push({ path: where(key), message: `cannot be used with HttpPath (an HTTP check sends its own request and reads the status): remove ${key}, or remove HttpPath for a Send/Expect check` });
    }
  } else if (hc.ExpectStatus !== undefined) {
    issues.push({ path: where('ExpectStatus'), message: 'is only used by HTTP checks: add "HttpPath" (as "/health") or remove ExpectStatus' });
  }
  const { IntervalMs: interval, TimeoutMs: timeout } = hc;
  if (Number.isInteger(interval) && Number.isInteger(timeout) && (timeout as number) > (interval as number)) {
    issues.push({
      path: where('TimeoutMs'),
      message: `${String(timeout)} is more than IntervalMs (${String(interval)}): a probe must end before the next one starts; lower TimeoutMs or raise IntervalMs`,
    });
  }
}

/** Keys that only mean something beside another one: say so instead of silently ignoring them. */
function checkLimits(app: Json, at: (...rest: PathSegment[]) => PathSegment[], issues: PathIssue[]): void {
  if (typeof app.QueueTimeoutMs === 'number' && app.QueueTimeoutMs > 0 && !(typeof app.MaxConnections === 'number' && app.MaxConnections > 0) && !hasTargetLimit(app)) {
    issues.push({ path: at('QueueTimeoutMs'), message: 'queues connections over MaxConnections, so it needs "MaxConnections" (on the app or on a target): add it or remove QueueTimeoutMs' });
  }
  const p = app.PerSource;
  if (isObject(p) && p.Burst !== undefined && !(typeof p.RatePerSecond === 'number' && p.RatePerSecond > 0)) {
    issues.push({ path: at('PerSource', 'Burst'), message: 'is the token bucket size of RatePerSecond: add "RatePerSecond" or remove Burst' });
  }
  if (app.FirstByteTimeoutMs !== undefined && app.FirstByteTimeoutMs !== 0 && (app.Tls !== undefined || app.AcceptProxyProtocol === true)) {
    issues.push({ path: at('FirstByteTimeoutMs'), message: 'applies to plain TCP apps only; TLS and PROXY-protocol apps already close silent clients after HandshakeTimeoutMs: use that instead' });
  }
}

/** Some target of the app (in Targets or a route) has its own MaxConnections. */
function hasTargetLimit(app: Json): boolean {
  const limited = (targets: unknown) => Array.isArray(targets) && targets.some((t) => isObject(t) && typeof t.MaxConnections === 'number');
  return limited(app.Targets) || (Array.isArray(app.Routes) && app.Routes.some((r) => isObject(r) && limited(r.Targets)));
}

function appLabel(app: unknown, index: number): string {
  return isObject(app) && typeof app.Name === 'string' ? `"${app.Name}"` : `Apps[${index}]`;
}

function isPort(v: unknown): v is number {
  return Number.isInteger(v) && (v as number) >= 1 && (v as number) <= 65535;
}

function isObject(v: unknown): v is Json {
  return typeof v === 'object' && v !== null && !Array.isArray(v);
}
