// First: the first candidate in config order (active/standby: the rest take over in order when it
// is unusable, and traffic goes back to it once it is usable again). Weights do not apply.
import type { Strategy } from './strategy.ts';

export class First implements Strategy {
  pick(candidate: Uint8Array, _count: number, _key: string | undefined): number {
    return candidate.indexOf(1);
  }
}
