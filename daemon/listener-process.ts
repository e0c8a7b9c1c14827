// ListenerProcess: the daemon's handle on one forked listener (one worker of one app generation).
// It owns the child's IPC lifecycle (proxy/ipc/protocol.ts): start → ready|failed within
// readyTimeoutMs, heartbeats, metrics requests, drain, and the kill that follows a missed deadline.
// Invariants: `exited` settles exactly once, when the child is gone; every path that gives up on
// a child (failed start, missed heartbeats, drain past its deadline) SIGKILLs it, so no listener
// outlives the daemon's interest in it; sends to a dead channel are dropped, never thrown.
import type { ChildProcess } from 'node:child_process';
import type net from 'node:net';
import { EventEmitter } from 'node:events';
import type { ListenerSpec } from '../proxy/index.ts';
import { IPC_VERSION, parseFromListener } from '../proxy/index.ts';
import type { FromListener, HandoverSession, HealthStates, MetricsSnapshot, TargetReport, ToListener } from '../proxy/index.ts';
import { DaemonError } from './daemon-error.ts';
import type { Logger } from './logger.ts';
import type { AppLimits, LimitHolder } from './limits/app-limits.ts';

export interface ListenerTiming {
  /** From fork to `ready`; past it the child is killed and the start fails. */
  readonly readyTimeoutMs: number;
  readonly heartbeatMs: number;
  /** Pings left unanswered in a row before the listener counts as hung and is killed. */
  readonly missedHeartbeats: number;
  /** Extra time past spec.drainTimeoutMs before a draining listener is killed. */
  readonly killGraceMs: number;
}

export const LISTENER_TIMING: ListenerTiming = {
  readyTimeoutMs: 10_000,
  heartbeatMs: 5000,
  missedHeartbeats: 3,
  killGraceMs: 2000,
};

export interface ListenerProcessOptions {
  readonly spec: ListenerSpec;
  readonly generation: number;
  readonly worker: number;
  readonly logger: Logger;
  readonly timing: ListenerTiming;
  /** A forked listener waiting for `start`: a spare from the pool, or a fresh fork (see SparePool). */
  readonly acquire: () => ChildProcess;
  /** The app's active health states when forking, sent in `start` (a new process starts with them). */
  readonly health?: () => HealthStates;
  /** The app's limit authority (issue 12): this process leases from it while it lives. */
  readonly limits?: AppLimits;
}

/** A listener's latest view of its targets (pong or `targets` message); absent until it sends one. */
export interface ListenerTargets {
  readonly targets: readonly TargetReport[];
  readonly panic: boolean;
}

export type ListenerState = 'starting' | 'ready' | 'draining' | 'exited';

export interface ListenerExit {
  readonly code: number | null;
  readonly signal: NodeJS.Signals | null;
  /** True when the daemon asked for it (drain, kill); false for a crash or a hang. */
  readonly expected: boolean;
  /** Why it ended, for logs and status. */
  readonly error?: DaemonError;
}

/** A handed-over session's socket from a draining worker (issue 16 §2), to relay to the new generation. */
export interface HandoverPart {
  readonly from: number;
  readonly id: number;
  readonly part: 'client' | 'upstream';
  readonly session: HandoverSession;
  readonly socket: net.Socket;
  /** The sender's limit holder: session.lease moves from it to the adopter's (same daemon only). */
  readonly holder?: LimitHolder;
}

export class ListenerProcess extends EventEmitter<{ exit: [ListenerExit]; handover: [HandoverPart]; stopping: [string] }> {
  readonly spec: ListenerSpec;
  readonly generation: number;
  readonly worker: number;
  readonly exited: Promise<ListenerExit>;
  state: ListenerState = 'starting';
  /** From the latest pong (or `draining`). */
  activeConnections = 0;
  /** The latest metrics the listener sent (a scrape reply, or its final one with `drained`). */
  lastSnapshot: MetricsSnapshot | undefined;
  /** From the latest pong or `targets` message that carried them. */
  targets: ListenerTargets | undefined;
  /** lastSnapshot is the final one (sent with `drained`): nothing more will be counted. */
  finalSnapshot = false;
  readyAt: number | undefined;
  /** The ports the listener bound, from its `ready` (in spec.ports order; a 0 there is the kernel's pick here). */
  boundPorts: readonly number[] = [];

  readonly #options: ListenerProcessOptions;
  readonly #log: Logger;
  #child: ChildProcess | undefined;
  #expected = false;
  #hangError: DaemonError | undefined;
  #seq = 0;
  #unanswered = 0;
  #heartbeat: NodeJS.Timeout | undefined;
  #killTimer: NodeJS.Timeout | undefined;
  #resolveExit!: (exit: ListenerExit) => void;
  #onDrainAck: (() => void) | undefined;
  #limits: LimitHolder | undefined;
  readonly #metricsWaiters = new Map<number, (s: MetricsSnapshot | undefined) => void>();

  constructor(options: ListenerProcessOptions) {
    super();
    this.#options = options;
    this.spec = options.spec;
    this.generation = options.generation;
    this.worker = options.worker;
    this.#log = options.logger.child({ app: options.spec.app, gen: options.generation, worker: options.worker });
    this.exited = new Promise((resolve) => (this.#resolveExit = resolve));
  }

  get pid(): number | undefined {
    return this.#child?.pid;
  }

  /** Fork, send `start`, resolve on `ready`. Rejects (after killing the child) on `failed`, early exit or timeout. */
  start(): Promise<void> {
    const { spec, generation, worker, timing } = this.#options;
    const context = { app: spec.app, generation, worker };
    return new Promise<void>((resolve, reject) => {
      let settled = false;
      const fail = (err: DaemonError): void => {
        if (settled) return;
        settled = true;
        clearTimeout(timer);
        // The rejection reports this failure; the exit that follows is not a crash to restart.
        this.#expected = true;
        this.#kill('SIGKILL');
        reject(err);
      };
      const timer = setTimeout(() => {
        fail(new DaemonError('ERR_LISTENER_READY_TIMEOUT', `Listener for app "${spec.app}" (generation ${generation}, worker ${worker}) did not report ready within ${timing.readyTimeoutMs} ms`, { ...context, pid: this.pid }));
      }, timing.readyTimeoutMs);

      let child: ChildProcess;
      try {
        child = this.#options.acquire();
      } catch (cause) {
        fail(new DaemonError('ERR_LISTENER_SPAWN', `Cannot start a listener for app "${spec.app}": ${(cause as Error).message}`, { ...context, cause }));
        this.#exit({ code: null, signal: null, expected: true });
        return;
      }
      this.#child = child;
      this.#limits = this.#options.limits?.attach((msg) => this.#send(msg));

      child.on('error', (cause) => {
        // 'error' covers spawn failures and failed kills/sends; only a spawn failure ends the child.
        this.#log.warn({ err: cause }, 'listener process error');
        if (child.pid === undefined) {
          fail(new DaemonError('ERR_LISTENER_SPAWN', `Cannot start a listener for app "${spec.app}": ${cause.message}`, { ...context, cause }));
          this.#exit({ code: null, signal: null, expected: true });
        }
      });
      // 'exit' can come before the last IPC messages are read (a `drained` with its final metrics):
      // handle the exit once the channel has closed too, or after a second at most.
      child.on('exit', (code, signal) => {
        if (!child.connected) return onExit(code, signal);
        const timer = setTimeout(() => onExit(code, signal), 1000);
        child.once('disconnect', () => {
          clearTimeout(timer);
          onExit(code, signal);
        });
      });
      const onExit = (code: number | null, signal: NodeJS.Signals | null): void => {
        fail(new DaemonError('ERR_LISTENER_EXITED', `Listener for app "${spec.app}" (generation ${generation}, worker ${worker}) exited before ready (code ${code}, signal ${signal})`, { ...context, pid: child.pid }));
        const crashed = !this.#expected;
        this.#exit({
          code,
          signal,
          expected: !crashed,
          error: this.#hangError ?? (crashed ? new DaemonError('ERR_LISTENER_CRASHED', `Listener for app "${spec.app}" (generation ${generation}, worker ${worker}, pid ${child.pid}) exited unexpectedly (code ${code}, signal ${signal})`, { ...context, pid: child.pid }) : undefined),
        });
      };
      child.on('message', (raw, handle) => {
        if (handle !== undefined && (raw as { type?: unknown } | null)?.type === 'handover') {
          // Node made a socket of the handle and started reading it: stop now, in this tick, so no
          // byte is read here (the adopting worker reads it from the kernel instead).
          (handle as { _handle?: { readStop?: () => void } })._handle?.readStop?.();
        }
        const received = parseFromListener(raw);
        if (!received.ok && handle !== undefined) (handle as net.Socket).destroy?.();
        if (!received.ok) {
          this.#log.warn({ msg: raw, error: received.error }, 'invalid IPC message from listener; ignored');
          return;
        }
        const msg = received.msg;
        if (msg.type === 'ready' && !settled) {
          settled = true;
          clearTimeout(timer);
          this.state = 'ready';
          this.readyAt = Date.now();
          this.boundPorts = msg.ports;
          this.#startHeartbeat();
          resolve();
        } else if (msg.type === 'failed') {
          fail(new DaemonError(msg.error.code, `Listener for app "${spec.app}" (generation ${generation}, worker ${worker}) failed to start: ${msg.error.message}`, { ...context, pid: child.pid, cause: msg.error }));
        } else if (msg.type === 'handover') {
          const socket = handle as net.Socket | undefined;
          if (socket === undefined) return this.#log.warn('handover message without its socket; ignored');
          this.emit('handover', { from: child.pid!, id: msg.id, part: msg.part, session: msg.session, socket, ...(this.#limits === undefined ? {} : { holder: this.#limits }) });
        } else {
          this.#onMessage(msg);
        }
      });
      const health = this.#options.health?.();
      this.#send({ v: IPC_VERSION, type: 'start', spec, generation, worker, ...(health === undefined ? {} : { health }) });
    });
  }

  /**
   * Ask the listener to stop accepting and drain. Resolves once it has stopped accepting
   * (its `draining` reply, its exit, or ackTimeoutMs — whichever comes first). It is killed
   * if still alive drainTimeoutMs + killGraceMs from now; `exited` tells when it is gone.
   */
  drain(ackTimeoutMs = this.#options.timing.killGraceMs, handOver = false): Promise<void> {
    if (this.state === 'exited') return Promise.resolve();
    if (this.state !== 'draining') {
      this.state = 'draining';
      this.#expected = true;
      this.#send(handOver ? { v: IPC_VERSION, type: 'drain', handOver } : { v: IPC_VERSION, type: 'drain' });
      const deadline = this.spec.drainTimeoutMs + this.#options.timing.killGraceMs;
      this.#killTimer = setTimeout(() => {
        this.#log.warn({ listenerPid: this.pid, deadlineMs: deadline }, 'listener still alive past its drain deadline; killing it');
        this.#kill('SIGKILL');
      }, deadline);
    }
    return new Promise<void>((resolve) => {
      const timer = setTimeout(done, ackTimeoutMs);
      const previous = this.#onDrainAck;
      this.#onDrainAck = done;
      void this.exited.then(done);
      function done(): void {
        clearTimeout(timer);
        previous?.();
        resolve();
      }
    });
  }

  /** Give this worker a handed-over session's socket; false (socket untouched) when it cannot take it. */
  adopt(part: HandoverPart, secondHalf = false): boolean {
    const child = this.#child;
    // A session's second half follows its first even into a worker that has started draining since
    // (it pairs them, then hands the session on or drains it with the rest).
    const open = this.state === 'ready' || (secondHalf && this.state === 'draining');
    if (!open || child === undefined || !child.connected) return false;
    // The connection's leases come with it (the client half carries them): moved here, and the
    // adopter is told what moved. From another daemon (an upgrade) nothing can move.
    const { lease, ...session } = part.session;
    const moved = lease !== undefined && part.part === 'client' && part.holder !== undefined && this.#limits !== undefined ? part.holder.transferTo(this.#limits, lease.key, lease.app, lease.slots) : undefined;
    const carried = moved !== undefined && moved.app + moved.slots > 0 ? { ...session, lease: { ...moved, key: lease!.key } } : session;
    child.send({ v: IPC_VERSION, type: 'adopt', from: part.from, id: part.id, part: part.part, session: carried } satisfies ToListener, part.socket, {}, (err) => {
      if (err) {
        this.#log.warn({ err }, 'could not pass a handed-over connection on; it is closed');
        part.socket.destroy();
      }
    });
    return true;
  }

  /** Push the app's active health states (any state but exited; a starting process got `start` first). */
  sendHealth(states: HealthStates): void {
    if (this.state === 'exited') return;
    this.#send({ v: IPC_VERSION, type: 'health', states });
  }

  /**
   * Ask for a fresh metrics snapshot. Resolves with it, or with undefined when no reply comes within
   * timeoutMs or the process exits first (a late reply still updates lastSnapshot).
   */
  requestMetrics(timeoutMs: number): Promise<MetricsSnapshot | undefined> {
    const child = this.#child;
    if (this.state === 'exited' || child === undefined || !child.connected) return Promise.resolve(undefined);
    const seq = ++this.#seq;
    return new Promise((resolve) => {
      const timer = setTimeout(() => {
        this.#metricsWaiters.delete(seq);
        resolve(undefined);
      }, timeoutMs);
      this.#metricsWaiters.set(seq, (snapshot) => {
        clearTimeout(timer);
        this.#metricsWaiters.delete(seq);
        resolve(snapshot);
      });
      this.#send({ v: IPC_VERSION, type: 'metrics', seq });
    });
  }

  /** Kill at once (a failed rollout, shutdown past its deadline). Expected: no restart follows. */
  kill(): void {
    this.#expected = true;
    this.#kill('SIGKILL');
  }

  #onMessage(msg: FromListener): void {
    switch (msg.type) {
      case 'pong':
        this.#unanswered = 0;
        this.activeConnections = msg.activeConnections;
        // Listeners without a target pool do not send these: nothing ejected, no panic.
        if (Array.isArray(msg.targets)) this.targets = { targets: msg.targets, panic: msg.panic === true };
        return;
      case 'targets':
        this.targets = { targets: msg.targets, panic: msg.panic };
        return;
      case 'metrics-snapshot':
        this.lastSnapshot = msg.snapshot;
        this.activeConnections = msg.snapshot.activeConnections;
        this.#metricsWaiters.get(msg.seq)?.(msg.snapshot);
        return;
      case 'draining':
        this.activeConnections = msg.activeConnections;
        this.#log.info({ listenerPid: this.pid, activeConnections: msg.activeConnections }, 'listener stopped accepting; draining');
        this.#onDrainAck?.();
        this.#onDrainAck = undefined;
        return;
      case 'drained':
        if (msg.snapshot !== undefined) {
          this.lastSnapshot = msg.snapshot;
          this.finalSnapshot = true;
        }
        this.activeConnections = 0;
        this.#log.info({ listenerPid: this.pid, closedByTimeout: msg.closedByTimeout }, 'listener drained');
        return;
      case 'error':
        this.#log.warn({ listenerPid: this.pid, error: msg.error }, 'listener reported an IPC error');
        return;
      case 'stopping':
        // SIGTERM to the worker: its generation replaces it, then drains it with handover.
        if (this.state === 'ready') this.emit('stopping', msg.reason);
        return;
      case 'lease':
        this.#limits?.request(msg);
        return;
      case 'lease-return':
        this.#limits?.giveBack(msg);
        return;
      default:
        this.#log.warn({ listenerPid: this.pid, type: msg.type }, 'unexpected IPC message from listener; ignored');
    }
  }

  #startHeartbeat(): void {
    const { heartbeatMs, missedHeartbeats } = this.#options.timing;
    this.#heartbeat = setInterval(() => {
      // A draining listener may be busy closing; its own deadline (the kill timer) covers it.
      if (this.state === 'ready' && this.#unanswered >= missedHeartbeats) {
        const { app } = this.spec;
        this.#hangError = new DaemonError('ERR_LISTENER_HUNG', `Listener for app "${app}" (generation ${this.generation}, worker ${this.worker}, pid ${this.pid}) missed ${this.#unanswered} heartbeats; killed`, { app, generation: this.generation, worker: this.worker, pid: this.pid });
        this.#log.error({ event: 'listener-hung', listenerPid: this.pid, missed: this.#unanswered }, 'listener is hung (missed heartbeats); killing it');
        this.#kill('SIGKILL');
        return;
      }
      this.#unanswered++;
      this.#send({ v: IPC_VERSION, type: 'ping', seq: ++this.#seq });
    }, heartbeatMs);
  }

  #send(msg: ToListener): void {
    const child = this.#child;
    if (child === undefined || !child.connected) return;
    // The callback swallows ERR_IPC_CHANNEL_CLOSED when the child dies between check and send.
    child.send(msg, (err) => {
      if (err) this.#log.debug({ err, type: msg.type }, 'IPC send failed (listener gone)');
    });
  }

  #kill(signal: NodeJS.Signals): void {
    const child = this.#child;
    if (child === undefined || child.exitCode !== null || child.signalCode !== null) return;
    try {
      child.kill(signal);
    } catch (err) {
      this.#log.warn({ err, listenerPid: child.pid }, 'kill failed');
    }
  }

  #exit(exit: ListenerExit): void {
    if (this.state === 'exited') return;
    this.state = 'exited';
    this.#limits?.drop();
    this.#limits = undefined;
    clearInterval(this.#heartbeat);
    clearTimeout(this.#killTimer);
    this.#onDrainAck?.();
    this.#onDrainAck = undefined;
    for (const waiter of [...this.#metricsWaiters.values()]) waiter(undefined);
    this.#resolveExit(exit);
    this.emit('exit', exit);
  }
}
