// The JS engine against the shared conformance suite.
import { engineCase, preludeDownCase } from './engine.case.ts';
import { JsEngine } from './js-engine.ts';

engineCase('js', () => new JsEngine());
preludeDownCase('js', () => new JsEngine());
