// The JS engine against the shared conformance suite.
import { engineCase } from './engine.case.ts';
import { JsEngine } from './js-engine.ts';

engineCase('js', () => new JsEngine());
