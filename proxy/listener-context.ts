// ListenerContext: what a Session may use of its listener. Kept to an interface so a Session never
// reaches into the listener's bookkeeping.
import type { ConnectError, Connector } from './connector.ts';
import type { Engine } from './engine/engine.ts';
import type { Logger } from './log.ts';
import type { Router } from './router.ts';
import type { Session } from './session.ts';
import type { TlsTerminator } from './tls/terminator.ts';
import type { ListenerSpec } from './spec.ts';

export interface ListenerContext {
  readonly spec: ListenerSpec;
  readonly router: Router;
  readonly connector: Connector;
  readonly logger: Logger;
  /** Who forwards once a session is connected: `js` or `native` (plain TCP client sides only). */
  readonly engine: Engine;
  /** Set while a Tls "terminate" app is started. */
  readonly terminator: TlsTerminator | undefined;
  /**
   * Set only when the app has ACL or limits and a PROXY header: true = go on; false = refused, or held
   * until session.admitted(). Checked once the header gives the real client address.
   */
  readonly admit: ((session: Session) => boolean) | undefined;
  onConnectFailed(session: Session, err: ConnectError | null): void;
  onSessionClosed(session: Session): void;
}
