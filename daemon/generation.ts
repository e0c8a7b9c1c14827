// Generation: the `spec.workers` listener processes that serve one spec of one app, as one unit.
// It starts all workers together (ready = every worker ready), restarts a worker that dies while
// the generation serves (same spec, exponential backoff per worker slot, reset once a worker has
// stayed up for stableMs), and drains or kills all of them together.
// Invariants: no worker is forked once the generation drains or stops; a generation whose start
// failed has no process left; `state` only moves forward: starting → serving → draining → stopped.
import type { ChildProcess } from 'node:child_process';
import { EventEmitter } from 'node:events';
import type { ListenerSpec } from '../proxy/index.ts';
import { backoffDelay } from './backoff-delay.ts';
import type { BackoffOptions } from './backoff-delay.ts';
import { DaemonError } from './daemon-error.ts';
import { ListenerProcess } from './listener-process.ts';
import type { ListenerExit, ListenerTiming } from './listener-process.ts';
import type { Logger } from './logger.ts';

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
}

export type GenerationState = 'starting' | 'serving' | 'draining' | 'stopped';

interface WorkerSlot {
  readonly index: number;
  process: ListenerProcess | undefined;
  attempt: number;
  restartTimer: NodeJS.Timeout | undefined;
}

export class Generation extends EventEmitter<{ failure: [DaemonError]; restarted: [ListenerProcess]; workerExit: [ListenerProcess] }> {
  readonly spec: ListenerSpec;
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
    const results = await Promise.allSettled(this.#slots.map((slot) => this.#startWorker(slot)));
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
  async drain(): Promise<void> {
    if (this.state === 'draining' || this.state === 'stopped') return;
    this.state = 'draining';
    this.#cancelRestarts();
    await Promise.all([...this.#live].map((p) => (p.state === 'starting' ? (p.kill(), p.exited) : p.drain())));
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

  activeConnections(): number {
    let sum = 0;
    for (const p of this.#live) sum += p.activeConnections;
    return sum;
  }

  /** Every live process of this generation (starting, ready or draining): what a metrics scrape asks. */
  processes(): ListenerProcess[] {
    return [...this.#live];
  }

  #startWorker(slot: WorkerSlot): Promise<void> {
    const { spec, number, logger, timing, acquire } = this.#options;
    const proc = new ListenerProcess({ spec, generation: number, worker: slot.index, logger, timing, acquire });
    slot.process = proc;
    this.#live.add(proc);
    proc.on('exit', (exit) => this.#onWorkerExit(slot, proc, exit));
    return proc.start();
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
    this.#log.warn({ worker: slot.index, delayMs, attempt: slot.attempt, code: cause.code, err: cause.message }, 'restarting listener after backoff');
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
