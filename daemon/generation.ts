// Generation: the `spec.workers` listener processes that serve one spec of one app, as one unit.
// It starts all workers together (ready = every worker ready), restarts a worker that dies while
// the generation serves (same spec, exponential backoff per worker slot, reset once a worker has
// stayed up for stableMs), and drains or kills all of them together.
// A spec with a 0 port: worker 0 starts alone, the kernel picks the port, and `spec` then carries
// the real port (from its `ready`), so the other workers and every restart bind that same port.
// Invariants: no worker is forked once the generation drains or stops; a generation whose start
// failed has no process left; `state` only moves forward: starting → serving → draining → stopped.
import type { ChildProcess } from 'node:child_process';
import { EventEmitter } from 'node:events';
import type { HealthStates, ListenerSpec } from '../proxy/index.ts';
import { backoffDelay } from './backoff-delay.ts';
import type { BackoffOptions } from './backoff-delay.ts';
import { DaemonError } from './daemon-error.ts';
import { ListenerProcess } from './listener-process.ts';
import type { HandoverPart, ListenerExit, ListenerTargets, ListenerTiming } from './listener-process.ts';
import type { Logger } from './logger.ts';
import type { AppLimits } from './limits/app-limits.ts';

export interface SupervisionTiming extends ListenerTiming {
  readonly backoff: BackoffOptions;
  /** A worker up this long has its restart backoff reset. */
  readonly stableMs: number;
}

export interface GenerationOptions {
  readonly spec: ListenerSpec;
  readonly number: number;
  readonly logger: Logger;
  readonly timing: SupervisionTiming;
  readonly acquire: () => ChildProcess;
  /** The app's active health states, read at each fork (start and restarts). */
  readonly health?: () => HealthStates;
  readonly limits?: AppLimits;
}

export type GenerationState = 'starting' | 'serving' | 'draining' | 'stopped';

interface WorkerSlot {
  readonly index: number;
  process: ListenerProcess | undefined;
  attempt: number;
  restartTimer: NodeJS.Timeout | undefined;
}

export class Generation extends EventEmitter<{ failure: [DaemonError]; restarted: [ListenerProcess]; workerExit: [ListenerProcess]; handover: [HandoverPart] }> {
  /** What the workers run: the given spec, with any 0 port replaced by the real one once worker 0 is ready. */
  spec: ListenerSpec;
  readonly number: number;
  state: GenerationState = 'starting';
  readonly #options: GenerationOptions;
  readonly #log: Logger;
  readonly #slots: WorkerSlot[];
  readonly #live = new Set<ListenerProcess>();

  constructor(options: GenerationOptions) {
    super();
    this.#options = options;
    this.spec = options.spec;
    this.number = options.number;
    this.#log = options.logger.child({ app: options.spec.app, gen: options.number });
    this.#slots = Array.from({ length: Math.max(1, options.spec.workers) }, (_, index) => ({ index, process: undefined, attempt: 0, restartTimer: undefined }));
  }

  /** Start every worker; resolves when all are ready. On any failure every worker is killed and the first error is thrown. */
  async start(): Promise<void> {
    const results = this.spec.ports.includes(0) ? await this.#startResolvingPorts() : await Promise.allSettled(this.#slots.map((slot) => this.#startWorker(slot)));
    const failure = results.find((r) => r.status === 'rejected');
    const lost = this.#slots.find((s) => s.process?.state !== 'ready');
    const aborted = this.state !== 'starting';
    if (failure !== undefined || lost !== undefined || aborted) {
      this.kill();
      await this.exited();
      const context = { app: this.spec.app, generation: this.number };
      if (failure !== undefined) throw failure.reason;
      if (aborted) throw new DaemonError('ERR_GENERATION_ABORTED', `Generation ${this.number} of app "${this.spec.app}" was stopped while starting`, context);
      // A worker that died between its `ready` and the last worker's is not restarted: the start fails.
      throw new DaemonError('ERR_LISTENER_EXITED', `A listener of app "${this.spec.app}" (generation ${this.number}, worker ${lost?.index}) exited while its generation was starting`, { ...context, worker: lost?.index });
    }
    this.state = 'serving';
  }

  /** Stop accepting everywhere; resolves once every worker has stopped accepting (see ListenerProcess.drain). */
  /** handOver: the workers move their established connections to the app's new generation (a rollout). */
  async drain(handOver = false): Promise<void> {
    if (this.state === 'draining' || this.state === 'stopped') return;
    this.state = 'draining';
    this.#cancelRestarts();
    await Promise.all([...this.#live].map((p) => (p.state === 'starting' ? (p.kill(), p.exited) : p.drain(undefined, handOver))));
  }

  /**
   * Give a handed-over socket to one of our ready workers (chosen from the sender's pid and the
   * session id); the worker that took it, for the session's other half. Undefined when none could.
   */
  adopt(part: HandoverPart): ListenerProcess | undefined {
    const ready = this.#slots.map((s) => s.process).filter((p): p is ListenerProcess => p?.state === 'ready');
    if (ready.length === 0) return undefined;
    const worker = ready[(part.from + part.id) % ready.length]!;
    return worker.adopt(part) ? worker : undefined;
  }

  kill(): void {
    if (this.state !== 'stopped') this.state = 'stopped';
    this.#cancelRestarts();
    for (const p of this.#live) p.kill();
  }

  /** Resolves when no process of this generation is alive (call after drain/kill: nothing forks then). */
  async exited(): Promise<void> {
    while (this.#live.size > 0) await Promise.all([...this.#live].map((p) => p.exited));
    if (this.state === 'draining') this.state = 'stopped';
  }

  /** Pids of the workers that are up (ready, or draining); a worker still starting is not listed yet. */
  pids(): number[] {
    return [...this.#live].filter((p) => (p.state === 'ready' || p.state === 'draining') && p.pid !== undefined).map((p) => p.pid!);
  }

  /** Workers that are up and serving (ready). */
  readyWorkers(): number {
    return this.#slots.filter((s) => s.process?.state === 'ready').length;
  }

  get workers(): number {
    return this.#slots.length;
  }

  /** Push health states to every live worker (starting, ready or draining). */
  sendHealth(states: HealthStates): void {
    for (const p of this.#live) p.sendHealth(states);
  }

  /** Live workers' latest target views (a worker that never sent one is absent). */
  targetViews(): ListenerTargets[] {
    const views: ListenerTargets[] = [];
    for (const p of this.#live) if (p.targets !== undefined && p.state !== 'exited') views.push(p.targets);
    return views;
  }

  activeConnections(): number {
    let sum = 0;
    for (const p of this.#live) sum += p.activeConnections;
    return sum;
  }

  /** Worker 0 first, on the kernel's ports; then the others on the ports it bound. */
  async #startResolvingPorts(): Promise<PromiseSettledResult<void>[]> {
    const [first, ...rest] = this.#slots;
    const [result] = await Promise.allSettled([this.#startWorker(first!)]);
    if (result!.status === 'rejected') return [result!];
    const bound = first!.process!.boundPorts;
    const ports = this.spec.ports.map((p, i) => (p === 0 ? bound[i] : p));
    if (ports.some((p) => p === undefined || p === 0)) {
      const err = new DaemonError('ERR_LISTENER_PORTS', `Listener for app "${this.spec.app}" (generation ${this.number}) reported ports ${JSON.stringify(bound)} for spec ports ${JSON.stringify(this.spec.ports)}`, { app: this.spec.app, generation: this.number });
      return [{ status: 'rejected', reason: err }];
    }
    this.spec = { ...this.spec, ports: ports as number[] };
    this.#log.info({ event: 'ports-resolved', ports: this.spec.ports }, 'kernel-picked ports resolved');
    return [result!, ...(await Promise.allSettled(rest.map((slot) => this.#startWorker(slot))))];
  }

  /** Every live process of this generation (starting, ready or draining): what a metrics scrape asks. */
  processes(): ListenerProcess[] {
    return [...this.#live];
  }

  #startWorker(slot: WorkerSlot): Promise<void> {
    const { number, logger, timing, acquire, health, limits } = this.#options;
    const spec = this.spec;
    const proc = new ListenerProcess({ spec, generation: number, worker: slot.index, logger, timing, acquire, limits, ...(health === undefined ? {} : { health }) });
    slot.process = proc;
    this.#live.add(proc);
    proc.on('exit', (exit) => this.#onWorkerExit(slot, proc, exit));
    proc.on('handover', (part) => this.emit('handover', part));
    proc.on('stopping', (reason) => this.#replace(slot, proc, reason));
    return proc.start();
  }

  /**
   * A worker asked to stop (SIGTERM): start its replacement in the same slot while it still serves,
   * then drain it with handover, so its connections move to the replacement (or a sibling) instead
   * of being cut. If the replacement fails to start, the worker drains as before (its connections
   * finish where they are) and the slot is restarted with backoff like after a crash.
   */
  #replace(slot: WorkerSlot, proc: ListenerProcess, reason: string): void {
    if (this.state !== 'serving' || slot.process !== proc) return void proc.drain(undefined, false);
    this.#log.info({ event: 'worker-replace', worker: slot.index, listenerPid: proc.pid, reason }, 'worker asked to stop; starting its replacement, then handing its connections over');
    this.#startWorker(slot).then(
      () => {
        this.#log.info({ worker: slot.index, listenerPid: slot.process?.pid, replaced: proc.pid }, 'replacement worker ready; the old one hands its connections over');
        this.emit('restarted', slot.process!);
        void proc.drain(undefined, true);
      },
      (err: DaemonError) => {
        void proc.drain(undefined, false);
        if (this.state !== 'serving') return;
        this.emit('failure', err);
        this.#scheduleRestart(slot, err);
      },
    );
  }

  #onWorkerExit(slot: WorkerSlot, proc: ListenerProcess, exit: ListenerExit): void {
    this.#live.delete(proc);
    this.emit('workerExit', proc);
    if (exit.expected || this.state !== 'serving' || slot.process !== proc) return;
    const err = exit.error ?? new DaemonError('ERR_LISTENER_CRASHED', `Listener for app "${this.spec.app}" exited unexpectedly`, { app: this.spec.app, generation: this.number, worker: slot.index });
    this.emit('failure', err);
    if (proc.readyAt !== undefined && Date.now() - proc.readyAt >= this.#options.timing.stableMs) slot.attempt = 0;
    this.#scheduleRestart(slot, err);
  }

  #scheduleRestart(slot: WorkerSlot, cause: DaemonError): void {
    const delayMs = backoffDelay(slot.attempt, this.#options.timing.backoff);
    slot.attempt++;
    this.#log.warn({ event: 'listener-restart-scheduled', worker: slot.index, delayMs, attempt: slot.attempt, code: cause.code, err: cause.message }, 'restarting listener after backoff');
    slot.restartTimer = setTimeout(() => {
      slot.restartTimer = undefined;
      if (this.state !== 'serving') return;
      this.#startWorker(slot).then(
        () => {
          if (this.state !== 'serving') return;
          this.#log.info({ worker: slot.index, listenerPid: slot.process?.pid }, 'listener restarted');
          this.emit('restarted', slot.process!);
        },
        (err: DaemonError) => {
          if (this.state !== 'serving') return;
          this.emit('failure', err);
          this.#scheduleRestart(slot, err);
        },
      );
    }, delayMs);
  }

  #cancelRestarts(): void {
    for (const slot of this.#slots) {
      clearTimeout(slot.restartTimer);
      slot.restartTimer = undefined;
    }
  }
}
