import { test } from 'node:test';
import assert from 'node:assert/strict';
import { TargetsReporter } from './targets-reporter.ts';
import { waitFor } from './testing.ts';

test('a burst of changes is one message; the next waits out the minimum interval', async (t) => {
  const sent: number[] = [];
  const r = new TargetsReporter(() => sent.push(performance.now()), () => undefined, 100);
  t.after(() => r.close());
  for (let k = 0; k < 5; k++) r.changed();
  await waitFor(() => sent.length === 1, 20_000, 'first message');
  r.changed();
  r.changed();
  await waitFor(() => sent.length === 2, 20_000, 'second message');
  assert.ok(sent[1]! - sent[0]! >= 95, `${(sent[1]! - sent[0]!).toFixed(0)} ms apart`);
  assert.equal(sent.length, 2);
});

test('while a target is ejected, one more message goes out when the ejection runs out', async (t) => {
  const sent: number[] = [];
  let expiry: number | undefined = Date.now() + 300;
  const r = new TargetsReporter(() => sent.push(Date.now()), () => (expiry !== undefined && expiry > Date.now() ? expiry : undefined), 50);
  t.after(() => r.close());
  r.changed();
  await waitFor(() => sent.length === 2, 20_000, 'the expiry message');
  assert.ok(sent[1]! >= expiry!, 'sent once the ejection ran out');
  // A change while the expiry message is pending is not held back until then.
  expiry = Date.now() + 60_000;
  r.changed();
  await waitFor(() => sent.length === 3, 20_000, 'the change message');
  r.changed();
  await waitFor(() => sent.length === 4, 20_000, 'another change message, before the distant expiry');
});

test('close() stops everything pending', async () => {
  let sent = 0;
  const r = new TargetsReporter(() => sent++, () => Date.now() + 10, 10);
  r.changed();
  r.close();
  r.changed();
  // Nothing to wait for: give the (0 ms) timer that close() cleared several chances to fire.
  await new Promise((resolve) => setTimeout(resolve, 50));
  assert.equal(sent, 0);
});
