// AppSupervisor: everything the daemon runs for one app — the current generation, the one being
// rolled out, and the old ones still draining — and the app's state and last error for status.
// Invariants:
//   - zero downtime: the current generation is drained only after its successor is ready; a
//     successor that fails to start is killed and the current one keeps serving (rollback);
//   - applies (start/rollout) of one app run one at a time, in call order;
//   - an app with no serving generation (its first start failed) retries with backoff until it
//     gets one or is stopped, so a bad start never leaves it without a listener for good.
import type { ChildProcess } from 'node:child_process';
import type { ListenerSpec } from '../proxy/index.ts';
import { backoffDelay } from './backoff-delay.ts';
import { summarizeError } from './daemon-error.ts';
import type { ErrorSummary } from './daemon-error.ts';
import { Generation } from './generation.ts';
import type { SupervisionTiming } from './generation.ts';
import type { ListenerProcess } from './listener-process.ts';
import type { Logger } from './logger.ts';
import type { AppMetricsSink } from './metrics/daemon-metrics.ts';

export type AppState = 'starting' | 'running' | 'rolling-out' | 'draining' | 'failed';

/** One element of GET /apps. */
export interface AppStatus {
  readonly name: string;
  /** The serving generation (or the one starting when none serves yet). */
  readonly generation: number;
  readonly state: AppState;
  /** Pids of the serving generation's workers that are up (a worker being restarted is not listed until ready). */
  readonly pids: number[];
  readonly ports: readonly number[];
  readonly targets: string[];
  /** Summed over the serving and the draining generations, from their latest pongs. */
  readonly activeConnections: number;
  readonly lastError: ErrorSummary | null;
  readonly workers: number;
  /** Rollouts completed since the daemon started this app. */
  readonly rollouts: number;
  /** Pids of older generations still draining. */
  readonly drainingPids: number[];
}

export interface AppSupervisorOptions {
  readonly name: string;
  readonly logger: Logger;
  readonly timing: SupervisionTiming;
  /** A forked listener waiting for `start` (see SparePool). */
  readonly acquire: () => ChildProcess;
  /** Generation numbers are per app name and never reused, even across remove/re-add. */
  readonly nextGeneration: () => number;
  /** Told about exits (to fold their final counts), restarts and rollouts. */
  readonly metrics?: AppMetricsSink;
}

export class AppSupervisor {
  readonly name: string;
  rollouts = 0;
  readonly #options: AppSupervisorOptions;
  readonly #log: Logger;
  #wanted: ListenerSpec | undefined;
  #current: Generation | undefined;
  #pending: Generation | undefined;
  readonly #draining = new Set<Generation>();
  #retiring = false;
  #lastError: ErrorSummary | null = null;
  #queue: Promise<unknown> = Promise.resolve();
  #retryTimer: NodeJS.Timeout | undefined;
  #retryAttempt = 0;

  constructor(options: AppSupervisorOptions) {
    this.#options = options;
    this.name = options.name;
    this.#log = options.logger.child({ app: options.name });
  }

  /** The spec this app runs (or keeps trying to start): what the next config is diffed against. */
  get spec(): ListenerSpec | undefined {
    return this.#current?.spec ?? this.#wanted;
  }

  get retiring(): boolean {
    return this.#retiring;
  }

  /** Start the app, or roll it out to `spec`. Resolves true once `spec` serves, false if it failed (the old generation, if any, keeps serving). */
  apply(spec: ListenerSpec): Promise<boolean> {
    clearTimeout(this.#retryTimer);
    this.#retryTimer = undefined;
    const run = this.#queue.then(() => this.#apply(spec));
    this.#queue = run.catch(() => undefined);
    return run;
  }

  /** Stop accepting on every generation; resolves when all have stopped accepting. Use exited() to wait for the drain. */
  async stop(): Promise<void> {
    this.#retiring = true;
    clearTimeout(this.#retryTimer);
    this.#pending?.kill();
    const current = this.#current;
    if (current !== undefined) await this.#retire(current);
  }

  /** Resolves when no process of this app is alive (after stop()). */
  async exited(): Promise<void> {
    await this.#queue;
    await Promise.all([...this.#draining].map((g) => g.exited()));
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
      generation: current?.number ?? pending?.number ?? 0,
      state,
      pids: current?.pids() ?? [],
      ports: spec?.ports ?? [],
      targets: spec?.targets.map((t) => t.raw) ?? [],
      activeConnections,
      lastError: this.#lastError,
      workers: spec?.workers ?? 0,
      rollouts: this.rollouts,
      drainingPids,
    };
  }

  async #apply(spec: ListenerSpec): Promise<boolean> {
    if (this.#retiring) return false;
    this.#wanted = spec;
    const { logger, timing, acquire } = this.#options;
    const gen = new Generation({ spec, number: this.#options.nextGeneration(), logger, timing, acquire });
    const metrics = this.#options.metrics;
    if (metrics !== undefined) {
      gen.on('workerExit', (p) => metrics.listenerExited(p));
      gen.on('restarted', () => metrics.listenerRestarted(this.name));
    }
    const old = this.#current;
    this.#pending = gen;
    this.#log.info({ gen: gen.number, workers: gen.workers, ports: spec.ports, from: old?.number }, old ? 'rolling out a new generation' : 'starting app');
    const startedAt = Date.now();
    try {
      await gen.start();
    } catch (err) {
      this.#pending = undefined;
      this.#lastError = summarizeError(err);
      if (this.#retiring) return false;
      if (old !== undefined) {
        metrics?.rolloutDone(this.name, gen.number, 'failed', Date.now() - startedAt);
        this.#log.error({ gen: gen.number, err, keeping: old.number }, 'new generation failed to start; the old generation keeps serving');
      } else {
        const delayMs = backoffDelay(this.#retryAttempt++, this.#options.timing.backoff);
        this.#log.error({ gen: gen.number, err, retryInMs: delayMs }, 'app failed to start; retrying after backoff');
        this.#retryTimer = setTimeout(() => {
          this.#retryTimer = undefined;
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
    this.#lastError = null;
    this.#retryAttempt = 0;
    gen.on('failure', (err) => {
      this.#lastError = summarizeError(err);
    });
    this.#log.info({ gen: gen.number, listenerPids: gen.pids(), ms: Date.now() - startedAt }, old ? 'new generation ready; draining the old one' : 'app ready');
    if (old !== undefined) {
      this.rollouts++;
      metrics?.rolloutDone(this.name, gen.number, 'completed', Date.now() - startedAt);
      await this.#retire(old);
    }
    return true;
  }

  /** Drain `gen`; resolves once it stopped accepting and forgets it once it has exited. */
  async #retire(gen: Generation): Promise<void> {
    this.#draining.add(gen);
    await gen.drain();
    void gen.exited().then(() => {
      this.#draining.delete(gen);
      this.#log.info({ gen: gen.number }, 'generation drained and exited');
    });
  }
}
