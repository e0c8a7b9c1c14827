// SparePool: a few listener processes forked ahead of need and left waiting for their `start`.
// Booting a listener (Node, module load, type stripping) costs ~0.3 CPU-seconds, seconds on a busy
// machine; a spare has paid that already, so a rollout or a restart takes it and is ready in
// milliseconds. Spares know nothing of any app: the spec comes with `start`.
// Invariants: the pool hands out only children that are alive and connected; a spare that dies
// idle is replaced after backoff (a broken entry cannot fork-loop); close() kills every spare.
// A spare orphaned by a dead daemon exits by itself like any listener (IPC disconnect).
import type { ChildProcess } from 'node:child_process';
import { backoffDelay } from './backoff-delay.ts';
import { forkListener } from './fork-listener.ts';
import type { BackoffOptions } from './backoff-delay.ts';
import type { Logger } from './logger.ts';

export interface SparePoolOptions {
  readonly size: number;
  readonly entry: URL;
  readonly env?: NodeJS.ProcessEnv;
  readonly logger: Logger;
  readonly backoff?: BackoffOptions;
}

export class SparePool {
  readonly #options: SparePoolOptions;
  readonly #spares = new Set<ChildProcess>();
  #failures = 0;
  #refillTimer: NodeJS.Timeout | undefined;
  #closed = false;

  constructor(options: SparePoolOptions) {
    this.#options = options;
    this.#refill();
  }

  get size(): number {
    return this.#spares.size;
  }

  /** A booted-or-booting idle listener, or undefined when none is left (fork one yourself). */
  take(): ChildProcess | undefined {
    for (const child of this.#spares) {
      this.#spares.delete(child);
      child.removeAllListeners('exit');
      child.removeAllListeners('error');
      if (child.exitCode === null && child.signalCode === null && child.connected) {
        this.#failures = 0;
        setImmediate(() => this.#refill());
        return child;
      }
    }
    this.#refill();
    return undefined;
  }

  close(): void {
    this.#closed = true;
    clearTimeout(this.#refillTimer);
    for (const child of this.#spares) child.kill('SIGKILL');
    this.#spares.clear();
  }

  #refill(): void {
    if (this.#closed || this.#refillTimer !== undefined) return;
    while (this.#spares.size < this.#options.size) {
      let child: ChildProcess;
      try {
        child = forkListener(this.#options.entry, this.#options.env);
      } catch (err) {
        this.#onSpareDied(undefined, err);
        return;
      }
      const bornAt = Date.now();
      this.#spares.add(child);
      child.on('error', (err) => this.#options.logger.warn({ err }, 'spare listener process error'));
      child.once('exit', (code, signal) => {
        this.#spares.delete(child);
        // Dying within seconds of birth is a broken entry or environment: back off.
        if (Date.now() - bornAt < 5000) return this.#onSpareDied({ code, signal }, undefined);
        this.#failures = 0;
        this.#refill();
      });
    }
  }

  #onSpareDied(exit: { code: number | null; signal: NodeJS.Signals | null } | undefined, err: unknown): void {
    if (this.#closed) return;
    const delayMs = backoffDelay(this.#failures++, this.#options.backoff);
    this.#options.logger.warn({ ...exit, err, retryInMs: delayMs }, 'spare listener died while idle; forking another after backoff');
    clearTimeout(this.#refillTimer);
    this.#refillTimer = setTimeout(() => {
      this.#refillTimer = undefined;
      this.#refill();
    }, delayMs);
  }
}
