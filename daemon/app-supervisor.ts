// AppSupervisor: everything the daemon runs for one app — the current generation, the one being
// rolled out, and the old ones still draining — and the app's state and last error for status.
// Invariants:
//   - zero downtime: the current generation is drained only after its successor is ready; a
//     successor that fails to start is killed and the current one keeps serving (rollback);
//   - applies (start/rollout) of one app run one at a time, in call order;
//   - an app with no serving generation (its first start failed) retries with backoff until it
//     gets one or is stopped, so a bad start never leaves it without a listener for good;
//   - a 0 in the spec's ports is the kernel's pick on the first start, then the same port for
//     every later generation (kept by index into the ports list; a new 0 entry gets a new pick);
//   - the app's active health checks (one HealthChecker) live here, not in a generation: every
//     process forked gets the current states in `start`, every live one hears each change;
//   - an operator drain (admin API) is a target forced to the 'drain' health state on top of the
//     checks, kept here across rollouts (dropped when the target leaves the config), never written
//     to the config;
//   - a spec that differs from the serving one only in HealthCheck retunes the checks: no new
//     generation (listeners never read it).
import type { ChildProcess } from 'node:child_process';
import type { HealthStates, ListenerSpec } from '../proxy/index.ts';
import { BACKOFF_DEFAULTS, backoffDelay } from './backoff-delay.ts';
import { summarizeError } from './daemon-error.ts';
import type { ErrorSummary } from './daemon-error.ts';
import { Generation } from './generation.ts';
import type { SupervisionTiming } from './generation.ts';
import type { HandoverPart, ListenerProcess } from './listener-process.ts';
import type { Logger } from './logger.ts';
import { configuredTargets, HealthChecker } from './health/health-checker.ts';
import type { ResolveHost } from './health/resolve-host.ts';
import { targetStatus } from './health/target-status.ts';
import type { AppHealth, TargetStatus } from './health/target-status.ts';
import type { TargetHealth } from './health/target-health.ts';
import { AppLimits } from './limits/app-limits.ts';
import type { AppMetricsSink } from './metrics/daemon-metrics.ts';
import { canonicalJson } from './plan-rollout.ts';

export type AppState = 'starting' | 'running' | 'rolling-out' | 'draining' | 'failed';

/** One element of GET /apps. */
export interface AppStatus {
  readonly name: string;
  /** The serving generation (or the one starting when none serves yet). */
  readonly generation: number;
  readonly state: AppState;
  /** Pids of the serving generation's workers that are up (a worker being restarted is not listed until ready). */
  readonly pids: number[];
  /** The ports bound (a configured 0 shows the kernel's pick; 0 only until the first worker is ready). */
  readonly ports: readonly number[];
  /** Bind addresses (Listen); absent = every interface. */
  readonly listen?: readonly string[];
  /** The default pool. */
  readonly targets: string[];
  /** SNI routes and their pools; absent for an app without Routes. */
  readonly routes?: { sni: readonly string[]; alpn?: readonly string[]; targets: string[] }[];
  /** Summed over the serving and the draining generations, from their latest pongs. */
  readonly activeConnections: number;
  /** What is wrong now (no serving generation, a worker down, the last rollout failed); null when the app runs what the config asks. */
  readonly currentError: ErrorSummary | null;
  /** History: the most recent error, kept after the app recovered (see lastErrorAt and currentError). */
  readonly lastError: ErrorSummary | null;
  readonly lastErrorAt: string | null;
  /** When an app with no serving generation next tries to start (backoff); null otherwise. */
  readonly nextAttemptAt: string | null;
  readonly workers: number;
  /** Rollouts completed since the daemon started this app. */
  readonly rollouts: number;
  /** Pids of older generations still draining. */
  readonly drainingPids: number[];
  /** One per configured target (route pools included): active checks merged with the workers' reports. */
  readonly health: TargetStatus[];
  /** Some worker of the serving generation has a pool in panic (every target unusable: all used). */
  readonly panic: boolean;
}

export interface AppSupervisorOptions {
  readonly name: string;
  readonly logger: Logger;
  readonly timing: SupervisionTiming;
  /** A forked listener waiting for `start` (see SparePool). */
  readonly acquire: () => ChildProcess;
  /** Generation numbers are per app name and never reused, even across remove/re-add. */
  readonly nextGeneration: () => number;
  /** How health probes resolve target names (one per daemon, as its listeners resolve them). */
  readonly resolveHost?: ResolveHost;
  /** Told about exits (to fold their final counts), restarts and rollouts. */
  readonly metrics?: AppMetricsSink;
  /** What a predecessor daemon ran for this app (daemon upgrade): its ports and health states. */
  readonly carried?: AppCarry;
}

/** Carried over a daemon upgrade: the ports bound (so a configured 0 keeps the kernel's pick) and the health states. */
export interface AppCarry {
  readonly ports: readonly number[];
  readonly health: Readonly<Record<string, TargetHealth>>;
}

export class AppSupervisor {
  readonly name: string;
  rollouts = 0;
  readonly #options: AppSupervisorOptions;
  readonly #log: Logger;
  #wanted: ListenerSpec | undefined;
  /** The spec (as configured, 0 ports included) the current generation was started from. */
  #serving: ListenerSpec | undefined;
  /** Index into spec.ports → the port the kernel picked for a configured 0 there. */
  readonly #picked = new Map<number, number>();
  #current: Generation | undefined;
  #pending: Generation | undefined;
  readonly #draining = new Set<Generation>();
  #retiring = false;
  #lastError: ErrorSummary | null = null;
  #currentError: ErrorSummary | null = null;
  /** The generation number of the last start attempt, shown while none serves. */
  #lastAttempt = 0;
  #nextAttemptAt: Date | undefined;
  #queue: Promise<unknown> = Promise.resolve();
  #retryTimer: NodeJS.Timeout | undefined;
  #retryAttempt = 0;
  /** Active health checks: one per app, outliving every generation (health survives rollouts). */
  readonly #checker: HealthChecker;
  /** The app's connection limits, shared by every generation (issue 12). */
  readonly limits: AppLimits;
  /** Operator-drained targets (as written) → since when (epoch ms). */
  readonly #drained = new Map<string, number>();

  constructor(options: AppSupervisorOptions) {
    this.#options = options;
    this.name = options.name;
    this.limits = new AppLimits(options.name);
    this.#log = options.logger.child({ app: options.name });
    this.#checker = new HealthChecker({
      app: options.name,
      logger: options.logger,
      onChange: () => this.#pushHealth(),
      ...(options.resolveHost === undefined ? {} : { resolveHost: options.resolveHost }),
      ...(options.carried === undefined ? {} : { carried: options.carried.health }),
    });
    // Every index: only those configured as 0 are read (in #apply).
    options.carried?.ports.forEach((p, i) => this.#picked.set(i, p));
  }

  /** What a successor daemon needs to carry on this app (undefined while no generation serves). */
  carry(): AppCarry | undefined {
    const current = this.#current;
    if (current === undefined) return undefined;
    return { ports: [...current.spec.ports], health: this.#checker.carry() };
  }

  /** The spec this app runs (or keeps trying to start), as configured: what the next config is diffed against. */
  get spec(): ListenerSpec | undefined {
    return (this.#current === undefined ? undefined : this.#serving) ?? this.#wanted;
  }

  get retiring(): boolean {
    return this.#retiring;
  }

  /** Start the app, or roll it out to `spec`. Resolves true once `spec` serves, false if it failed (the old generation, if any, keeps serving). */
  apply(spec: ListenerSpec): Promise<boolean> {
    clearTimeout(this.#retryTimer);
    this.#retryTimer = undefined;
    this.#nextAttemptAt = undefined;
    const run = this.#queue.then(() => this.#apply(spec));
    this.#queue = run.catch(() => undefined);
    return run;
  }

  /** Whether `target` (as written) is one of the targets the app runs. */
  hasTarget(target: string): boolean {
    const spec = this.spec;
    return spec !== undefined && configuredTargets(spec).some((t) => t.raw === target);
  }

  /** Operator drain on/off for one target: every worker hears it now, every later generation at start. */
  setDrain(target: string, drain: boolean): void {
    if (drain === this.#drained.has(target)) return;
    if (drain) this.#drained.set(target, Date.now());
    else this.#drained.delete(target);
    this.#log.info({ event: 'target-drain', target, drain }, drain ? `target ${target} drained by the operator` : `target ${target} enabled by the operator`);
    this.#pushHealth();
  }

  /** Set for a daemon upgrade: where this app's connections go when it stops (stop(true)). */
  handOverTo: ((app: string, part: HandoverPart) => boolean) | undefined;

  /**
   * Stop accepting on every generation; resolves when all have stopped accepting. Use exited() to
   * wait for the drain. handOver (a daemon upgrade, with handOverTo set): move established connections.
   */
  async stop(handOver = false): Promise<void> {
    this.#retiring = true;
    clearTimeout(this.#retryTimer);
    this.#checker.stop();
    this.#pending?.kill();
    const current = this.#current;
    if (current !== undefined) await this.#retire(current, handOver && this.handOverTo !== undefined);
  }

  /** A connection handed over by the old daemon's listeners (daemon upgrade): to a worker of the serving generation. */
  adopt(part: HandoverPart): boolean {
    // Both halves of a session to the same worker (see the handover relay above).
    const key = `${part.from}:${part.id}`;
    const pinned = this.#halves.get(key);
    if (pinned !== undefined) {
      this.#halves.delete(key);
      return pinned(part);
    }
    const worker = this.#current?.adopt(part);
    if (worker === undefined) return false;
    this.#halves.set(key, (second) => worker.adopt(second, true));
    return true;
  }

  /** Resolves when no process of this app is alive (after stop()). */
  async exited(): Promise<void> {
    await this.#queue;
    await Promise.all([...this.#draining].map((g) => g.exited()));
    this.limits.close();
  }

  /** Every live listener process of this app: serving, rolling out and draining generations. */
  processes(): ListenerProcess[] {
    const gens = new Set<Generation>(this.#draining);
    if (this.#current !== undefined) gens.add(this.#current);
    if (this.#pending !== undefined) gens.add(this.#pending);
    return [...gens].flatMap((g) => g.processes());
  }

  status(): AppStatus {
    const current = this.#current;
    const pending = this.#pending;
    const spec = this.spec;
    let state: AppState;
    if (this.#retiring) state = 'draining';
    else if (pending !== undefined) state = current === undefined ? 'starting' : 'rolling-out';
    else if (current === undefined || current.readyWorkers() === 0) state = 'failed';
    else state = 'running';
    let activeConnections = current?.activeConnections() ?? 0;
    const drainingPids: number[] = [];
    for (const g of this.#draining) {
      if (g === current) continue;
      activeConnections += g.activeConnections();
      drainingPids.push(...g.pids());
    }
    return {
      name: this.name,
      generation: current?.number ?? pending?.number ?? this.#lastAttempt,
      state,
      pids: current?.pids() ?? [],
      ports: current?.spec.ports ?? pending?.spec.ports ?? spec?.ports ?? [],
      ...(spec?.listen !== undefined && spec.listen.length > 0 ? { listen: spec.listen } : {}),
      targets: spec?.targets.map((t) => t.raw) ?? [],
      ...(spec !== undefined && spec.routes.length > 0
        ? { routes: spec.routes.map((r) => ({ sni: r.sni, ...(r.alpn.length > 0 ? { alpn: r.alpn } : {}), targets: r.targets.map((t) => t.raw) })) }
        : {}),
      activeConnections,
      currentError: this.#currentError,
      lastError: this.#lastError,
      lastErrorAt: this.#lastError?.at ?? null,
      nextAttemptAt: this.#nextAttemptAt?.toISOString() ?? null,
      workers: spec?.workers ?? 0,
      rollouts: this.rollouts,
      drainingPids,
      ...this.#withDrains(targetStatus(spec === undefined ? [] : configuredTargets(spec).map((t) => t.raw), (t) => this.#checker.health(t), current?.targetViews() ?? [], Date.now())),
    };
  }

  /** The states sent to listeners: the checks', with operator-drained targets as 'drain'. */
  #healthStates(): HealthStates {
    const states = this.#checker.states();
    if (this.#drained.size === 0) return states;
    const out: Record<string, HealthStates[string]> = { ...states };
    for (const target of this.#drained.keys()) out[target] = 'drain';
    return out;
  }

  #withDrains(h: AppHealth): AppHealth {
    if (this.#drained.size === 0) return h;
    return { ...h, health: h.health.map((t) => {
      const since = this.#drained.get(t.target);
      return since === undefined ? t : { ...t, state: 'drain', since: new Date(since).toISOString() };
    }) };
  }

  async #apply(spec: ListenerSpec): Promise<boolean> {
    if (this.#retiring) return false;
    const serving = this.#current;
    if (serving !== undefined && this.#serving !== undefined && onlyHealthCheckDiffers(this.#serving, spec)) {
      // Active checks run here, in the daemon; listeners only hear their verdicts. A change to
      // HealthCheck alone retunes the checks and leaves every listener and connection alone.
      this.#wanted = spec;
      this.#serving = spec;
      this.#checker.track([spec]);
      this.#log.info({ event: 'health-check-changed', gen: serving.number }, 'only HealthCheck changed: checks retuned, listeners untouched');
      return true;
    }
    this.#wanted = spec;
    const { logger, timing, acquire } = this.#options;
    const ports = spec.ports.map((p, i) => (p === 0 ? (this.#picked.get(i) ?? 0) : p));
    this.limits.configure(spec);
    const old = this.#current;
    // Check the old and the new targets while both may serve; states of unchanged ones carry over.
    this.#checker.track(old === undefined ? [spec] : [this.#serving ?? old.spec, spec]);
    const gen = new Generation({ spec: { ...spec, ports }, number: this.#options.nextGeneration(), logger, timing, acquire, limits: this.limits, health: () => this.#healthStates() });
    this.#lastAttempt = gen.number;
    const metrics = this.#options.metrics;
    gen.on('handover', (part) => {
      // To the generation serving now (the one that replaced `gen`, or `gen` itself when one of its
      // workers was stopped by SIGTERM: its ready workers, the replacement among them), or, when the
      // whole app stops for a daemon upgrade, to the new daemon; nobody to take it: it is closed.
      // The two halves of a session (client, upstream) come as two messages: the second goes where
      // the first went, even if another generation became current in between (split, neither
      // worker could ever resume it).
      const key = `${part.from}:${part.id}`;
      const pinned = this.#halves.get(key);
      if (pinned !== undefined) this.#halves.delete(key);
      const to = this.#current;
      const taken = pinned !== undefined ? pinned(part) : this.#handOverFirst(key, part, to);
      if (!taken) {
        this.#log.warn({ gen: gen.number, id: part.id }, 'no ready worker to hand a connection to; it is closed');
        part.socket.destroy();
      }
    });
    if (metrics !== undefined) {
      gen.on('workerExit', (p) => metrics.listenerExited(p));
      gen.on('restarted', () => metrics.listenerRestarted(this.name));
    }
    this.#pending = gen;
    this.#log.info({ gen: gen.number, workers: gen.workers, ports, from: old?.number }, old ? 'rolling out a new generation' : 'starting app');
    const startedAt = Date.now();
    try {
      await gen.start();
    } catch (err) {
      this.#pending = undefined;
      this.#recordError(err);
      if (old !== undefined) this.limits.configure(old.spec);
      if (this.#retiring) return false;
      // One line per attempt: the summary's message already names the cause, so the error object
      // (whose cause pino would append again, with a stack) is not logged.
      const { code, message } = this.#lastError!;
      // The old spec keeps serving (or the new one keeps being retried): check what that needs.
      this.#checker.track([old?.spec ?? spec]);
      if (old !== undefined) {
        metrics?.rolloutDone(this.name, gen.number, 'failed', Date.now() - startedAt);
        this.#log.error({ event: 'rollout-failed', gen: gen.number, code, err: message, keeping: old.number }, 'new generation failed to start; the old generation keeps serving');
      } else {
        const attempt = ++this.#retryAttempt;
        const delayMs = backoffDelay(attempt - 1, this.#options.timing.backoff);
        if (attempt === 1) {
          const { baseMs, maxMs } = { ...BACKOFF_DEFAULTS, ...this.#options.timing.backoff };
          this.#log.error({ event: 'start-failed', gen: gen.number, attempt, code, err: message, retryInMs: delayMs },
            `app failed to start; retrying by itself with backoff (${baseMs} ms doubling up to ${maxMs / 1000} s) until it starts or the config changes`);
        } else {
          this.#log.error({ event: 'start-failed', gen: gen.number, attempt, code, err: message, retryInMs: delayMs }, 'app still fails to start');
        }
        this.#nextAttemptAt = new Date(Date.now() + delayMs);
        this.#retryTimer = setTimeout(() => {
          this.#retryTimer = undefined;
          this.#nextAttemptAt = undefined;
          const wanted = this.#wanted;
          if (wanted !== undefined && this.#current === undefined && !this.#retiring) void this.apply(wanted);
        }, delayMs);
      }
      return false;
    }
    this.#pending = undefined;
    if (this.#retiring) {
      // stop() came while this generation was starting; it never takes over.
      gen.kill();
      await gen.exited();
      return false;
    }
    this.#current = gen;
    this.#serving = spec;
    this.#picked.clear();
    spec.ports.forEach((p, i) => {
      if (p === 0) this.#picked.set(i, gen.spec.ports[i]!);
    });
    this.#checker.track([spec]);
    // A drained target that left the config is forgotten (added again, it starts enabled).
    for (const target of this.#drained.keys()) if (!configuredTargets(spec).some((t) => t.raw === target)) this.#drained.delete(target);
    this.#currentError = null;
    this.#retryAttempt = 0;
    gen.on('failure', (err) => this.#recordError(err));
    gen.on('restarted', () => {
      if (this.#current === gen && gen.readyWorkers() === gen.workers) this.#currentError = null;
    });
    this.#log.info({ gen: gen.number, listenerPids: gen.pids(), ms: Date.now() - startedAt }, old ? 'new generation ready; draining the old one' : 'app ready');
    if (old !== undefined) {
      this.rollouts++;
      metrics?.rolloutDone(this.name, gen.number, 'completed', Date.now() - startedAt);
      await this.#retire(old, true);
    }
    return true;
  }

  #recordError(err: unknown): void {
    this.#lastError = summarizeError(err);
    this.#currentError = this.#lastError;
  }

  /** Where the first half of a handed-over session went (by "pid:id"), for its second half. */
  readonly #halves = new Map<string, (part: HandoverPart) => boolean>();

  #handOverFirst(key: string, part: HandoverPart, to: Generation | undefined): boolean {
    if (!this.#retiring && to !== undefined) {
      const worker = to.adopt(part);
      if (worker !== undefined) {
        this.#halves.set(key, (second) => worker.adopt(second, true));
        return true;
      }
    }
    if (this.handOverTo?.(this.name, part) === true) {
      const relay = this.handOverTo;
      this.#halves.set(key, (second) => relay(this.name, second));
      return true;
    }
    return false;
  }

  /** Every live process of the app hears of a health change: all workers, starting and draining generations too. */
  #pushHealth(): void {
    const states = this.#healthStates();
    const gens = new Set([this.#current, this.#pending, ...this.#draining]);
    for (const g of gens) g?.sendHealth(states);
  }

  /** Drain `gen`; resolves once it stopped accepting and forgets it once it has exited. */
  async #retire(gen: Generation, handOver = false): Promise<void> {
    this.#draining.add(gen);
    await gen.drain(handOver);
    void gen.exited().then(() => {
      this.#draining.delete(gen);
      this.#log.info({ gen: gen.number }, 'generation drained and exited');
    });
  }
}

/** The two specs are the same but for `healthCheck` (which only the daemon reads). */
function onlyHealthCheckDiffers(a: ListenerSpec, b: ListenerSpec): boolean {
  return canonicalJson(a.healthCheck) !== canonicalJson(b.healthCheck) && canonicalJson({ ...a, healthCheck: null }) === canonicalJson({ ...b, healthCheck: null });
}
