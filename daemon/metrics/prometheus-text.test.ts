// The strict Prometheus text reader the /metrics tests rely on: it must reject what promtool would.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { parsePrometheusText, sumSamples } from './prometheus-text.ts';

const ok = `# HELP a_total Things.
# TYPE a_total counter
a_total{app="x",outcome="ok"} 3
a_total{app="x",outcome="no-route"} 1
# HELP h Durations.
# TYPE h histogram
h_bucket{app="x",le="0.1"} 1
h_bucket{app="x",le="1"} 2
h_bucket{app="x",le="+Inf"} 2
h_sum{app="x"} 0.6
h_count{app="x"} 2
# TYPE g gauge
g Nan
`;

test('reads families, labels and values (NaN in any case, as Prometheus does)', () => {
  const f = parsePrometheusText(ok);
  assert.equal(f.get('a_total')?.type, 'counter');
  assert.equal(f.get('a_total')?.help, 'Things.');
  assert.equal(sumSamples(f, 'a_total', { app: 'x' }), 4);
  assert.equal(sumSamples(f, 'h_count'), 2);
  assert.ok(Number.isNaN(f.get('g')!.samples[0]!.value));
});

test('rejects what promtool would', () => {
  const bad: [string, RegExp][] = [
    ['a_total 1\n', /no TYPE line/],
    ['# TYPE a counter\na{x="1"} 1\na{x="1"} 2\n', /duplicate series/],
    ['# TYPE a counter\na{x=1} 1\n', /bad labels/],
    ['# TYPE a counter\na 1x\n', /bad value/],
    ['# TYPE h histogram\nh_bucket{le="1"} 2\nh_bucket{le="+Inf"} 1\nh_count 1\n', /not cumulative/],
    ['# TYPE h histogram\nh_bucket{le="1"} 1\nh_bucket{le="+Inf"} 1\nh_count 2\n', /!= _count/],
    ['# TYPE h histogram\nh_bucket{le="1"} 1\nh_count 1\n', /no le="\+Inf"/],
    ['# TYPE a bogus\n', /unknown type/],
  ];
  for (const [text, why] of bad) assert.throws(() => parsePrometheusText(text), why, text);
});
