// CertStore: the certificates of one TLS-terminating app, as SecureContexts picked by SNI, kept
// current while their files change (renewals) without a restart.
//
// Invariants:
// - load() either returns a store holding every configured pair or throws CertError
//   (ERR_TLS_CERT) naming the file and the fix; it never leaves a watcher behind.
// - select() is a synchronous map lookup: exact name, then a one-label wildcard ("*.a.test" serves
//   "x.a.test", not "y.x.a.test", as RFC 6125 §6.4.3 lets a client accept it), then the first pair
//   (the default). A name listed by two pairs goes to the earlier one.
// - Names come from the certificate's DNS subjectAltNames; the CN is used only when it has none.
// - A reload never makes things worse: a pair whose new files cannot be read, parsed or matched is
//   kept as it was (and logged at warn); the rest are swapped in. Connections already open keep
//   the context they were handshaken with.
// - Watching is cheap: one fs.watch per directory holding a cert or key (a directory watch survives
//   rename-over writes, certbot's symlink swaps and Kubernetes' ..data swaps, which a file watch
//   does not), debounced, content-compared so an unrelated change rebuilds nothing. No polling.
import fs from 'node:fs';
import path from 'node:path';
import tls from 'node:tls';
import type { Logger } from '../log.ts';
import type { CertSpec } from '../spec.ts';
import { parseCertPair, readProblem, type CertPair, type ShownAs } from './cert-pair.ts';

export { certNames } from './cert-pair.ts';

export class CertError extends Error {
  readonly code = 'ERR_TLS_CERT';
  readonly certPath: string;
  readonly keyPath: string;
  constructor(spec: CertSpec, message: string, cause?: unknown) {
    super(message, { cause });
    this.certPath = spec.certPath;
    this.keyPath = spec.keyPath;
  }
}

/** One configured pair as last loaded successfully. */
export interface LoadedCert {
  readonly spec: CertSpec;
  readonly certPem: Buffer;
  readonly keyPem: Buffer;
  readonly context: tls.SecureContext;
  /** Lower-case DNS names ("*.x" wildcards included) this pair serves. */
  readonly names: readonly string[];
  readonly serialNumber: string;
  readonly fingerprint256: string;
}

export interface CertStoreOptions {
  readonly logger?: Logger;
  /** Quiet time after the last file event before re-reading. Default 200 ms: a renewal writes a cert and a key. */
  readonly debounceMs?: number;
}

const DEFAULT_DEBOUNCE_MS = 200;

export class CertStore {
  readonly #logger: Logger | undefined;
  readonly #debounceMs: number;
  #certs: readonly LoadedCert[];
  #exact = new Map<string, tls.SecureContext>();
  /** ".a.example.test" → context, from "*.a.example.test". */
  #wild = new Map<string, tls.SecureContext>();
  #watchers: fs.FSWatcher[] = [];
  #timer: NodeJS.Timeout | null = null;
  #closed = false;
  /** Reloads that swapped in at least one new pair. */
  reloads = 0;

  private constructor(certs: LoadedCert[], opts: CertStoreOptions) {
    this.#certs = certs;
    this.#logger = opts.logger;
    this.#debounceMs = opts.debounceMs ?? DEFAULT_DEBOUNCE_MS;
    this.#index();
  }

  /** Reads and checks every pair (synchronously: start-up only). Throws CertError. */
  static load(specs: readonly CertSpec[], opts: CertStoreOptions = {}): CertStore {
    if (specs.length === 0) throw new CertError({ certPath: '', keyPath: '' }, 'Tls "terminate" needs at least one entry in Certs');
    return new CertStore(specs.map(loadPair), opts);
  }

  /** The pairs in config order, as currently served. */
  get certs(): readonly LoadedCert[] {
    return this.#certs;
  }

  /** Served to a client that sends no SNI, or one no certificate names. */
  get defaultContext(): tls.SecureContext {
    return this.#certs[0]!.context;
  }

  select(servername: string): tls.SecureContext {
    const name = servername.toLowerCase();
    const exact = this.#exact.get(name);
    if (exact !== undefined) return exact;
    const dot = name.indexOf('.');
    return (dot > 0 ? this.#wild.get(name.slice(dot)) : undefined) ?? this.#certs[0]!.context;
  }

  /** For TLSSocket's SNICallback; one function per store, not per connection. */
  readonly sniCallback = (servername: string, cb: (err: Error | null, ctx?: tls.SecureContext) => void): void => {
    cb(null, this.select(servername));
  };

  /** Watch the directories of every cert and key file; idempotent. Returns this. */
  watch(): this {
    if (this.#closed || this.#watchers.length > 0) return this;
    const dirs = new Set<string>();
    for (const c of this.#certs) {
      dirs.add(path.dirname(c.spec.certPath));
      dirs.add(path.dirname(c.spec.keyPath));
    }
    for (const dir of dirs) {
      try {
        const w = fs.watch(dir, { persistent: false }, this.#onEvent);
        w.on('error', (err) => this.#logger?.warn({ dir, err: err.message }, 'certificate directory watch failed; renewals there are not picked up until restart'));
        this.#watchers.push(w);
      } catch (err) {
        this.#logger?.warn({ dir, err: (err as Error).message }, 'cannot watch certificate directory; renewals there are not picked up until restart');
      }
    }
    return this;
  }

  readonly #onEvent = (): void => {
    if (this.#closed) return;
    if (this.#timer !== null) clearTimeout(this.#timer);
    this.#timer = setTimeout(this.#onQuiet, this.#debounceMs);
    this.#timer.unref();
  };

  readonly #onQuiet = (): void => {
    this.#timer = null;
    if (!this.#closed) this.reload();
  };

  /** Re-read every pair now; swap in those that changed and load cleanly. Returns how many were swapped. */
  reload(): number {
    let swapped = 0;
    const next = this.#certs.map((old) => {
      let certPem: Buffer;
      let keyPem: Buffer;
      try {
        certPem = fs.readFileSync(old.spec.certPath);
        keyPem = fs.readFileSync(old.spec.keyPath);
      } catch (err) {
        this.#warnKept(old, err);
        return old;
      }
      if (certPem.equals(old.certPem) && keyPem.equals(old.keyPem)) return old;
      try {
        const parsed = parseCertPair(certPem, keyPem, showSpec(old.spec));
        if (!parsed.ok) throw new Error(parsed.problems.map((p) => p.message).join('; '));
        const fresh = buildPair(old.spec, certPem, keyPem, parsed.pair);
        swapped++;
        this.#logger?.info({ event: 'cert-reloaded', cert: old.spec.certPath, names: fresh.names, serial: fresh.serialNumber, was: old.serialNumber }, 'certificate reloaded');
        return fresh;
      } catch (err) {
        this.#warnKept(old, err);
        return old;
      }
    });
    if (swapped > 0) {
      this.#certs = next;
      this.#index();
      this.reloads++;
    }
    return swapped;
  }

  #warnKept(old: LoadedCert, err: unknown): void {
    this.#logger?.warn({ code: 'ERR_TLS_CERT', cert: old.spec.certPath, key: old.spec.keyPath, err: (err as Error).message, serial: old.serialNumber },
      'certificate files changed but do not load; still serving the previous certificate');
  }

  #index(): void {
    const exact = new Map<string, tls.SecureContext>();
    const wild = new Map<string, tls.SecureContext>();
    for (const c of this.#certs) {
      for (const name of c.names) {
        const [map, key] = name.startsWith('*.') ? [wild, name.slice(1)] : [exact, name];
        if (!map.has(key)) map.set(key, c.context);
      }
    }
    this.#exact = exact;
    this.#wild = wild;
  }

  /** Stop watching (drain); the contexts stay usable for connections still open. */
  close(): void {
    this.#closed = true;
    if (this.#timer !== null) clearTimeout(this.#timer);
    this.#timer = null;
    for (const w of this.#watchers.splice(0)) w.close();
  }
}

function loadPair(spec: CertSpec): LoadedCert {
  const shown = showSpec(spec);
  const problems: string[] = [];
  const read = (file: string, what: 'certificate' | 'private key'): Buffer | undefined => {
    try {
      return fs.readFileSync(file);
    } catch (err) {
      problems.push(readProblem(err, what, `"${file}"`));
      return undefined;
    }
  };
  const certPem = read(spec.certPath, 'certificate');
  const keyPem = read(spec.keyPath, 'private key');
  const parsed = parseCertPair(certPem, keyPem, shown);
  if (!parsed.ok) problems.push(...parsed.problems.map((p) => p.message));
  if (problems.length > 0 || !parsed.ok) throw new CertError(spec, doesNotLoad(spec, problems));
  try {
    return buildPair(spec, certPem!, keyPem!, parsed.pair);
  } catch (err) {
    throw new CertError(spec, doesNotLoad(spec, [(err as Error).message]), err);
  }
}

function showSpec(spec: CertSpec): ShownAs {
  return { cert: `"${spec.certPath}"`, key: `"${spec.keyPath}"` };
}

function doesNotLoad(spec: CertSpec, problems: readonly string[]): string {
  return `Certificate "${spec.certPath}" with key "${spec.keyPath}" does not load: ${problems.join('; ')}`;
}

/** Throws when node:tls refuses the pair (parseCertPair has already checked the PEMs and the match). */
function buildPair(spec: CertSpec, certPem: Buffer, keyPem: Buffer, pair: CertPair): LoadedCert {
  const context = tls.createSecureContext({ cert: certPem, key: keyPem });
  return { spec, certPem, keyPem, context, names: pair.names, serialNumber: pair.x509.serialNumber, fingerprint256: pair.x509.fingerprint256 };
}
