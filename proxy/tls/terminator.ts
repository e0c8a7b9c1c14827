// TlsTerminator: turns an accepted client socket into a server-side TLS socket for a "terminate"
// app. The certificate comes from the CertStore by SNI. ALPN is negotiated only when some route
// of the app routes by ALPN: an L4 terminator does not know what its targets speak, so otherwise
// it answers no protocol and clients fall back to HTTP/1.1 (nginx stream without ssl_alpn does the
// same). When it does negotiate, the protocol is chosen so that the route the connection then
// takes is the one its offer matches (so `Alpn` routes work here as in passthrough).
//
// Invariants: the SNI and ALPN callbacks are built once per listener (no closure per connection);
// a client without SNI gets the store's current default certificate; wrap() never throws for a
// client's sake: handshake failures arrive as the TLS socket's 'error'.
import type net from 'node:net';
import tls from 'node:tls';
import type { Router } from '../router.ts';
import type { CertStore } from './cert-store.ts';

export class TlsTerminator {
  readonly store: CertStore;
  readonly #alpnCallback: ((arg: { servername: string; protocols: string[] }) => string | undefined) | undefined;

  constructor(store: CertStore, router: Router, negotiateAlpn: boolean) {
    this.store = store;
    this.#alpnCallback = negotiateAlpn ? ({ servername, protocols }) => chooseAlpn(router, servername || undefined, protocols) : undefined;
  }

  /** The socket must be paused with any already-read bytes unshifted; TLS reads them first. */
  wrap(socket: net.Socket): tls.TLSSocket {
    return new tls.TLSSocket(socket, {
      isServer: true,
      secureContext: this.store.defaultContext,
      SNICallback: this.store.sniCallback,
      ...(this.#alpnCallback ? { ALPNCallback: this.#alpnCallback } : {}),
    });
  }

  /** Stop watching the certificate files (drain). */
  close(): void {
    this.store.close();
  }
}

/**
 * The protocol to accept from the client's ALPN offer: the first one (in the client's order) that
 * leads to the same pool as the whole offer does. For a route with an Alpn list that is the client's
 * most preferred protocol the route allows. For a route without one (or the default pool) every
 * offered protocol leads there, and we must still name one: http/1.1 when offered (what an
 * unknown backend most likely speaks), else the client's first. Router.pool is pure, so asking it
 * per offered protocol moves no cursor.
 */
export function chooseAlpn(router: Router, servername: string | undefined, offered: readonly string[]): string | undefined {
  if (offered.length === 0) return undefined;
  const pool = router.pool(servername, offered);
  let first: string | undefined;
  let all = true;
  for (const p of offered) {
    if (router.pool(servername, [p]) === pool) first ??= p;
    else all = false;
  }
  if (all && offered.includes('http/1.1')) return 'http/1.1';
  return first ?? offered[0];
}
