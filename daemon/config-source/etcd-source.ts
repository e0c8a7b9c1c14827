// EtcdSource: the config as one etcd key holding the same JSON document as config.json
// (FPROXY_CONFIG_PATH=etcd://host1:2379,host2:2379/fproxy/config).
//   read()  → a linearizable get; version = the key's mod_revision. When etcd does not answer, the
//             last applied copy on disk (LastGood) is served instead and status says so.
//   watch() → one etcd watch on the key from the last revision seen (never polling). etcd3 re-creates
//             it after a reconnect from the last revision it delivered, so nothing is missed; when
//             that revision was compacted away the watch is cancelled: re-read, signal, watch on.
//             Each (re)connect also signals once, so a daemon serving from disk converges.
//   write() → a transaction: put only if the key's mod_revision is still ifVersion (compare-and-swap).
//   applied() → the pipeline applied this content: keep it on disk.
// Invariants: a lost connection never throws into the pipeline (it keeps what runs); gRPC keepalive
// notices a dead link, and reconnects back off up to FPROXY_ETCD_RETRY_MAX_MS.
import { readFileSync } from 'node:fs';
import { Etcd3 } from 'etcd3';
import type { IOptions, Watcher } from 'etcd3';
import { ExponentialBackoff, noop } from 'cockatiel';
import type { IBackoff } from 'cockatiel';
import { ConfigError } from '../config/validate.ts';
import type { Logger } from '../logger.ts';
import { ConfigSourceError } from './config-source.ts';
import type { ConfigSnapshot, ConfigSource, SourceStatus, Unwatch } from './config-source.ts';
import { LastGood } from './last-good.ts';

export interface EtcdTarget {
  readonly hosts: string[];
  readonly key: string;
}

/** `etcd://host1:2379,host2:2379/fproxy/config` → hosts and key. Throws ConfigError ERR_CONFIG_READ. */
export function parseEtcdUrl(raw: string): EtcdTarget {
  const m = /^etcd:\/\/([^/]+)(\/.+)$/.exec(raw.trim());
  const hosts = m?.[1]?.split(',').map((h) => h.trim()).filter((h) => h !== '') ?? [];
  const bad = hosts.filter((h) => !/^(?:\[[0-9a-fA-F:.]+\]|[A-Za-z0-9.-]+):\d{1,5}$/.test(h));
  if (m === null || hosts.length === 0 || bad.length > 0) {
    throw new ConfigError('ERR_CONFIG_READ', [{ path: '', message: `"${raw}" is not an etcd config URL: use etcd://host1:2379,host2:2379/fproxy/config (host:port members, then the key)` }], { path: raw });
  }
  return { hosts, key: m[2]! };
}

export interface EtcdSourceOptions {
  readonly logger: Logger;
  /** Where the last applied config is kept (FPROXY_STATE_DIR). */
  readonly stateDir: string;
  /** FPROXY_ETCD_CA / _CERT / _KEY (file paths), FPROXY_ETCD_USER / _PASSWORD. */
  readonly tls?: { readonly ca?: string; readonly cert?: string; readonly key?: string };
  readonly auth?: { readonly user: string; readonly password: string };
  /** Deadline of one read or write. Default 3000. */
  readonly callTimeoutMs?: number;
  /** gRPC keepalive ping interval: how soon a dead link is noticed. Default 10000 (etcd refuses pings more often than its --grpc-keepalive-min-time, 5 s by default). */
  readonly keepaliveMs?: number;
  /** Longest wait between reconnect attempts. Default 1000. */
  readonly retryMaxMs?: number;
  /** Directory relative cert paths in the config resolve against. Default: the working directory. */
  readonly baseDir?: string;
}

export class EtcdSource implements ConfigSource {
  readonly url: string;
  readonly #target: EtcdTarget;
  readonly #options: EtcdSourceOptions;
  readonly #log: Logger;
  readonly #client: Etcd3;
  readonly #lastGood: LastGood;
  readonly #timeoutMs: number;
  readonly #retryMaxMs: number;
  /** etcd answered the last read (undefined: no read yet). */
  #readOk: boolean | undefined;
  /** The watch stream is established. */
  #watchUp = false;
  /** Derived from the two above by #update(): reads work and, once watching, the watch is up. */
  #connected = false;
  #servingFrom: 'etcd' | 'disk' | null = null;
  /** mod_revision of the config the daemon serves (applied, or the copy on disk it starts from). */
  #revision: string | null = null;
  /** While reads fail under a watch: ask the pipeline to read again, with backoff, until etcd answers. */
  #retry: { onChange: (reason: string) => void; attempt: number; timer: NodeJS.Timeout | undefined } | undefined;
  /** Newest cluster revision seen (read header or watch event): where a new watch starts after. */
  #seen: bigint | undefined;
  #lastContact: Date | undefined;
  #disconnectedAt: Date | undefined;
  #watcher: Watcher | undefined;

  constructor(url: string, options: EtcdSourceOptions) {
    this.url = url;
    this.#target = parseEtcdUrl(url);
    this.#options = options;
    this.#log = options.logger;
    this.#timeoutMs = options.callTimeoutMs ?? 3000;
    this.#lastGood = new LastGood(options.stateDir, url);
    const retryMaxMs = options.retryMaxMs ?? 1000;
    this.#retryMaxMs = retryMaxMs;
    const keepaliveMs = options.keepaliveMs ?? 10_000;
    const clientOptions: IOptions = {
      hosts: this.#target.hosts,
      dialTimeout: this.#timeoutMs,
      grpcOptions: {
        'grpc.keepalive_time_ms': keepaliveMs,
        'grpc.keepalive_timeout_ms': Math.max(1000, Math.min(keepaliveMs, 5000)),
        'grpc.initial_reconnect_backoff_ms': Math.min(100, retryMaxMs),
        'grpc.max_reconnect_backoff_ms': retryMaxMs,
      },
      faultHandling: {
        // No circuit breaker per member: it would hold a member off for 5 s after it is back.
        host: () => noop,
        // etcd3 types this as an IBackoff but calls .next() on it first, as on its own default (a factory).
        watchBackoff: new ExponentialBackoff({ initialDelay: Math.min(100, retryMaxMs), maxDelay: retryMaxMs }) as unknown as IBackoff<unknown>,
      },
    };
    const { tls, auth } = options;
    if (tls?.ca !== undefined) {
      clientOptions.credentials = {
        rootCertificate: readFileSync(tls.ca),
        ...(tls.key !== undefined ? { privateKey: readFileSync(tls.key) } : {}),
        ...(tls.cert !== undefined ? { certChain: readFileSync(tls.cert) } : {}),
      };
    }
    if (auth !== undefined) clientOptions.auth = { username: auth.user, password: auth.password };
    this.#client = new Etcd3(clientOptions);
  }

  async read(): Promise<ConfigSnapshot> {
    const { key } = this.#target;
    let res;
    try {
      res = await this.#client.get(key).options({ deadline: Date.now() + this.#timeoutMs }).exec();
    } catch (err) {
      this.#readOk = false;
      this.#update((err as Error).message);
      this.#retryLater();
      return this.#readFromDisk(err);
    }
    this.#contact(res.header.revision);
    this.#readOk = true;
    if (this.#retry) this.#retry.attempt = 0;
    this.#update();
    const kv = res.kvs[0];
    if (kv === undefined) {
      throw new ConfigError('ERR_CONFIG_READ', [{ path: '', message: `etcd key ${key} does not exist: put the config there (etcdctl --endpoints=${this.#target.hosts.join(',')} put ${key} "$(cat config.json)")` }], { path: this.url });
    }
    if (this.#servingFrom === 'disk') this.#log.info({ event: 'config-source-etcd', revision: kv.mod_revision }, 'etcd answers again; reading the config from etcd');
    this.#servingFrom = 'etcd';
    return { bytes: Buffer.from(kv.value), baseDir: this.#baseDir(), version: kv.mod_revision };
  }

  async watch(onChange: (reason: string) => void, onGone?: (message: string) => void): Promise<Unwatch> {
    let stopped = false;
    this.#retry = { onChange, attempt: 0, timer: undefined };
    let connectedOnce: () => void = () => {};
    const firstConnect = new Promise<void>((r) => (connectedOnce = r));
    const start = (): void => {
      const builder = this.#client.watch().key(this.#target.key);
      if (this.#seen !== undefined) builder.startRevision(String(this.#seen + 1n));
      const watcher = builder.watcher();
      this.#watcher = watcher;
      watcher.on('connected', (res) => {
        this.#contact(res.header?.revision);
        this.#watchUp = true;
        this.#update();
        connectedOnce();
        // After a reconnect or a start from disk: one read converges on what etcd holds now.
        onChange('etcd watch connected');
      });
      watcher.on('data', (res) => this.#contact(res.header?.revision));
      watcher.on('put', (kv) => {
        this.#seen = maxRev(this.#seen, kv.mod_revision);
        onChange(`etcd put (mod_revision ${kv.mod_revision})`);
      });
      watcher.on('delete', () => {
        this.#log.warn({ event: 'config-missing', key: this.#target.key }, 'etcd config key deleted; keeping the running config');
        onGone?.(`etcd key ${this.#target.key} was deleted: apps keep running as they are until it is put back`);
      });
      watcher.on('disconnected', (err) => {
        this.#watchUp = false;
        this.#update(err.message);
      });
      watcher.on('error', (err) => {
        // Cancelled by etcd (typically: our start revision was compacted). Read what etcd holds now
        // (the pipeline diffs it) and watch on from there.
        this.#log.warn({ event: 'etcd-watch-cancelled', err: err.message }, 'etcd watch cancelled; re-reading the config');
        this.#watchUp = false;
        this.#update(err.message);
        this.#seen = undefined;
        void watcher.cancel().catch(() => {});
        if (stopped) return;
        // Paced, so an etcd that keeps cancelling (permissions) is not asked in a tight loop.
        setTimeout(() => {
          if (stopped) return;
          void this.#client.get(this.#target.key).options({ deadline: Date.now() + this.#timeoutMs }).exec()
            .then((res) => this.#contact(res.header.revision), () => {})
            .finally(() => {
              if (stopped) return;
              start();
              onChange('etcd watch re-created after compaction');
            });
        }, this.#retryMaxMs).unref();
      });
    };
    start();
    // Without a known revision the watch starts "now" on the server: wait until it exists, so a
    // write made after watch() resolves is reported. Unreachable etcd: the first connect signals.
    if (this.#seen === undefined) await Promise.race([firstConnect, new Promise((r) => setTimeout(r, this.#timeoutMs).unref())]);
    return async () => {
      stopped = true;
      clearTimeout(this.#retry?.timer);
      this.#retry = undefined;
      // Cancel watchers before close(), or the process may not exit (DEPENDENCIES.md).
      await this.#watcher?.cancel().catch(() => {});
      this.#watcher = undefined;
      this.#watchUp = false;
      this.#connected = false;
      // Unwatching is the daemon stopping: release the connection too (open gRPC channels keep a process alive).
      this.close();
    };
  }

  /** Release the etcd connection (the source is not used after). Idempotent. */
  close(): void {
    this.#client.close();
  }

  async write(bytes: Buffer, ifVersion: string | undefined): Promise<ConfigSnapshot> {
    const { key, hosts } = this.#target;
    if (ifVersion !== undefined && !/^\d+$/.test(ifVersion)) throw new ConfigSourceError('ERR_CONFIG_CONFLICT', `Version "${ifVersion}" is not an etcd revision of ${this.url}: read the config again and use its version`);
    const deadline = Date.now() + this.#timeoutMs;
    let res;
    try {
      if (ifVersion === undefined) {
        const put = await this.#client.put(key).value(bytes).options({ deadline }).exec();
        this.#contact(put.header.revision);
        return { bytes, baseDir: this.#baseDir(), version: put.header.revision };
      }
      res = await this.#client.if(key, 'Mod', '==', ifVersion).then(this.#client.put(key).value(bytes)).else(this.#client.get(key)).options({ deadline }).commit();
    } catch (err) {
      // Past the deadline grpc says "Deadline exceeded after 0.000s" (the retries used it up): say what it means.
      const why = Date.now() >= deadline ? `no answer within ${this.#timeoutMs} ms` : (err as Error).message;
      throw new ConfigSourceError('ERR_CONFIG_WRITE', `Cannot write the config to etcd key ${key} at ${hosts.join(',')}: ${why} (is a quorum of etcd members up and reachable?)`, { cause: err });
    }
    this.#contact(res.header.revision);
    if (!res.succeeded) {
      const current = res.responses[0]?.response_range?.kvs[0]?.mod_revision ?? 'none (the key does not exist)';
      throw new ConfigSourceError('ERR_CONFIG_CONFLICT', `The config at ${this.url} changed: its version is ${current}, not ${ifVersion}; read it again and retry`);
    }
    // A transaction's puts take the transaction's revision as their mod_revision.
    return { bytes, baseDir: this.#baseDir(), version: res.header.revision };
  }

  async applied(snapshot: ConfigSnapshot): Promise<void> {
    this.#revision = snapshot.version;
    try {
      await this.#lastGood.save(snapshot.bytes, snapshot.version);
    } catch (err) {
      this.#log.error({ err, path: this.#lastGood.path }, 'cannot keep the applied config on disk (FPROXY_STATE_DIR); a restart while etcd is down will not be able to serve it');
    }
  }

  describe(): string {
    return this.url;
  }

  status(): SourceStatus {
    const lastContactAt = this.#lastContact?.toISOString() ?? null;
    return {
      kind: 'etcd',
      connected: this.#connected,
      revision: this.#revision,
      servingFrom: this.#servingFrom,
      lastContactAt,
      disconnectedSince: this.#connected ? null : (this.#disconnectedAt?.toISOString() ?? null),
      // How stale the config may be: time since etcd last answered (0 while the watch is up).
      staleMs: this.#connected ? 0 : this.#lastContact === undefined ? null : Date.now() - this.#lastContact.getTime(),
    };
  }

  async #readFromDisk(err: unknown): Promise<ConfigSnapshot> {
    // grpc-js appends an empty "Resolution note:" to connect errors: noise in a message meant for people.
    const reason = ((err as Error).message ?? String(err)).replace(/\.?\s*Resolution note:\s*$/, '');
    const copy = await this.#lastGood.load();
    if (copy === undefined) {
      throw new ConfigError('ERR_CONFIG_READ', [{ path: '', message: `etcd at ${this.#target.hosts.join(',')} did not answer (${reason}) and there is no last good copy in ${this.#lastGood.path}: start etcd or point FPROXY_CONFIG_PATH at a reachable member` }], { path: this.url, cause: err });
    }
    // Already serving this very content (applied from etcd): it still came from etcd, which is just
    // not answering now. Anything else (a start while etcd is down) is served from the disk copy.
    if (!(this.#servingFrom === 'etcd' && this.#revision === copy.version) && this.#servingFrom !== 'disk') {
      this.#log.warn({ event: 'config-from-disk', path: this.#lastGood.path, revision: copy.version, savedAt: copy.savedAt, err: reason }, 'etcd does not answer: serving the last good config from disk; retrying etcd with backoff');
      this.#servingFrom = 'disk';
      this.#revision = copy.version;
    }
    // The copy was what etcd held when it was saved: staleness counts from then.
    this.#lastContact ??= new Date(copy.savedAt);
    this.#disconnectedAt ??= new Date();
    this.#seen ??= BigInt(copy.version);
    return { bytes: copy.bytes, baseDir: this.#baseDir(), version: copy.version };
  }

  /** Recompute `connected`; log and time-stamp a change (once per change, not per failed attempt). */
  #update(why?: string): void {
    const connected = this.#readOk !== false && (this.#watcher !== undefined ? this.#watchUp : this.#readOk === true);
    if (connected === this.#connected) return;
    this.#connected = connected;
    if (!connected) {
      this.#disconnectedAt = new Date();
      this.#log.warn({ event: 'etcd-disconnected', err: why }, 'etcd does not answer; apps keep running, retrying with backoff');
    } else {
      if (this.#disconnectedAt !== undefined) this.#log.info({ event: 'etcd-connected', downMs: Date.now() - this.#disconnectedAt.getTime() }, 'etcd answers again');
      this.#disconnectedAt = undefined;
    }
  }

  /** A read failed while watching: signal a re-read after a backoff (100 ms doubling, up to retryMaxMs) until one works. */
  #retryLater(): void {
    const retry = this.#retry;
    if (retry === undefined || retry.timer !== undefined) return;
    const delay = Math.min(this.#retryMaxMs, 100 * 2 ** retry.attempt++);
    retry.timer = setTimeout(() => {
      retry.timer = undefined;
      if (this.#retry === retry) retry.onChange('retrying etcd');
    }, delay).unref();
  }

  #contact(revision: string | undefined): void {
    this.#lastContact = new Date();
    if (revision !== undefined && /^\d+$/.test(revision)) this.#seen = maxRev(this.#seen, revision);
  }

  #baseDir(): string {
    return this.#options.baseDir ?? process.cwd();
  }
}

function maxRev(a: bigint | undefined, b: string): bigint {
  const n = BigInt(b);
  return a === undefined || n > a ? n : a;
}
