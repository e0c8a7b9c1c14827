// The accept-path suite on the js engine: Node accepts, connects and forwards (the reference).
import { acceptPathCase } from './accept-path.case.ts';
import { JsEngine } from './engine/js-engine.ts';

acceptPathCase('js', () => new JsEngine(), false);
