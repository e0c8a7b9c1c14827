// LimitAuthority with Admission holders wired in-process (synchronous delivery, so every step is
// deterministic): the app and per-source limits hold across holders, recalls free hoarded slots,
// the queue holds then serves, a dropped holder frees its leases.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { LimitAuthority } from './limit-authority.ts';
import { Admission, type Refusal, type Ticket } from './admission.ts';
import type { LimitSettings, ToHolder } from './lease-messages.ts';
import { SPEC_DEFAULTS, type ListenerSpec } from '../spec.ts';

function spec(over: Partial<ListenerSpec>): ListenerSpec {
  return { ...SPEC_DEFAULTS, app: 'a', ports: [0], targets: [], routes: [], workers: 2, ...over };
}

function settingsOf(s: ListenerSpec): LimitSettings {
  const p = s.perSource;
  return { maxConnections: s.maxConnections, queueTimeoutMs: s.queueTimeoutMs, perSourceMaxConnections: p?.maxConnections ?? 0, ratePerSecond: p?.ratePerSecond ?? 0, burst: p?.burst ?? 1, workers: s.workers };
}

/** N holders on one authority; messages are queued and delivered by flush(), as IPC would. */
function world(s: ListenerSpec, holders: number, now: () => number = Date.now) {
  const queue: (() => void)[] = [];
  const admissions: Admission[] = [];
  const authority = new LimitAuthority(settingsOf(s), {
    now,
    send: (h: number, msg: ToHolder) => queue.push(() => (msg.kind === 'grant' ? admissions[h]!.onGrant(msg) : admissions[h]!.onRecall(msg.key))),
  });
  for (let h = 0; h < holders; h++) {
    admissions.push(new Admission(s, { request: (r) => queue.push(() => authority.request(h, r)), giveBack: (r) => queue.push(() => authority.giveBack(h, r)) }));
  }
  const flush = () => {
    while (queue.length > 0) queue.shift()!();
  };
  /** Open a connection on holder h from `address`; returns its verdict once decided. */
  const open = (h: number, address: string) => {
    const result: { ticket: Ticket; verdict: Refusal | null | 'wait' } = { ticket: undefined as unknown as Ticket, verdict: 'wait' };
    const t: Ticket = { address, key: null, holds: 0, closed: false, decided: (_t, r) => (result.verdict = r) };
    result.ticket = t;
    result.verdict = admissions[h]!.check(t);
    return result;
  };
  return { authority, admissions, flush, open };
}

test('MaxConnections holds across holders: exactly N admitted, the N+1-th refused, a close frees one', () => {
  const w = world(spec({ maxConnections: 10 }), 2);
  const verdicts = [];
  for (let i = 0; i < 11; i++) {
    verdicts.push(w.open(i % 2, '10.0.0.1'));
    w.flush();
  }
  assert.deepEqual(verdicts.map((v) => v.verdict), [...new Array(10).fill(null), 'over-limit']);
  assert.equal(w.authority.appLeased, 10);
  w.admissions[1]!.release(verdicts[3]!.ticket);
  w.flush();
  // Holder 0 has no spare: the slot freed in holder 1 reaches it through the authority (a recall if need be).
  const again = w.open(0, '10.0.0.1');
  w.flush();
  assert.equal(again.verdict, null);
  assert.ok(w.authority.appLeased <= 10);
});

test('spare slots hoarded by an idle holder are recalled, so a busy holder still gets N', () => {
  const w = world(spec({ maxConnections: 64 }), 2); // block 4
  const first = w.open(1, '10.0.0.1');
  w.flush();
  assert.equal(first.verdict, null);
  let admitted = 0;
  for (let i = 0; i < 70; i++) {
    const v = w.open(0, '10.0.0.2');
    w.flush();
    if (v.verdict === null) admitted++;
  }
  assert.equal(admitted, 63, 'holder 1 holds one connection; its spare came back');
});

test('the queue holds a connection until a slot frees, then serves it; past QueueTimeoutMs it is refused', async () => {
  const w = world(spec({ maxConnections: 1, queueTimeoutMs: 200 }), 1);
  const a = w.open(0, '10.0.0.1');
  w.flush();
  assert.equal(a.verdict, null);
  const b = w.open(0, '10.0.0.1');
  w.flush();
  assert.equal(b.verdict, 'wait');
  w.admissions[0]!.release(a.ticket);
  w.flush();
  assert.equal(b.verdict, null, 'served once a slot freed');
  const c = w.open(0, '10.0.0.1');
  w.flush();
  assert.equal(c.verdict, 'wait');
  const deadline = Date.now() + 5000;
  while (c.verdict === 'wait' && Date.now() < deadline) {
    await new Promise((r) => setTimeout(r, 20));
    w.flush();
  }
  assert.equal(c.verdict, 'queue-timeout');
  w.authority.close();
});

test('per-source MaxConnections counts each source separately across holders', () => {
  const w = world(spec({ perSource: { maxConnections: 3, ratePerSecond: 0, burst: 1, prefix6: 64 } }), 2);
  const count = (addr: string) => {
    let ok = 0;
    for (let i = 0; i < 8; i++) {
      const v = w.open(i % 2, addr);
      w.flush();
      if (v.verdict === null) ok++;
      else assert.equal(v.verdict, 'over-limit');
    }
    return ok;
  };
  assert.equal(count('10.0.0.2'), 3);
  assert.equal(count('10.0.0.3'), 3);
  assert.equal(count('2001:db8:1:2::1'), 3);
  assert.equal(count('2001:db8:1:2::ffff'), 0, 'same /64: same source');
});

test('per-source rate: burst at once, then RatePerSecond, summed over holders', () => {
  let now = 0;
  const w = world(spec({ perSource: { maxConnections: 0, ratePerSecond: 10, burst: 20, prefix6: 64 } }), 2, () => now);
  let ok = 0;
  let limited = 0;
  for (let ms = 0; ms < 5000; ms += 5) {
    now = ms;
    const v = w.open((ms / 5) % 2, '10.0.0.9');
    w.flush();
    if (v.verdict === null) ok++;
    else if (v.verdict === 'rate-limited') limited++;
    if (v.ticket.holds !== 0) w.admissions[(ms / 5) % 2]!.release(v.ticket);
  }
  const want = 20 + 10 * 5;
  assert.ok(ok <= want && ok >= want * 0.9, `admitted ${ok}, want ${want} (within 10 %)`);
  assert.ok(limited > 0);
});

test('a dropped holder frees its leases', () => {
  const w = world(spec({ maxConnections: 2 }), 2);
  w.open(0, '10.0.0.1');
  w.flush();
  w.open(0, '10.0.0.1');
  w.flush();
  const refused = w.open(1, '10.0.0.1');
  w.flush();
  assert.equal(refused.verdict, 'over-limit');
  w.authority.dropHolder(0);
  const v = w.open(1, '10.0.0.1');
  w.flush();
  assert.equal(v.verdict, null);
});

test('idle source entries are swept; the entry count is capped', () => {
  const w = world(spec({ perSource: { maxConnections: 5, ratePerSecond: 0, burst: 1, prefix6: 64 } }), 1);
  const tickets = [];
  for (let i = 0; i < 50; i++) {
    const v = w.open(0, `10.0.${i}.1`);
    w.flush();
    tickets.push(v.ticket);
  }
  assert.equal(w.authority.sources, 50);
  for (const t of tickets) w.admissions[0]!.release(t);
  w.admissions[0]!.sweep(Date.now() + 60_000);
  w.flush();
  w.authority.sweep();
  assert.equal(w.authority.sources, 0);

  const capped = new LimitAuthority(settingsOf(spec({ perSource: { maxConnections: 0, ratePerSecond: 5, burst: 5, prefix6: 64 } })), { send: () => {}, maxEntries: 100 });
  for (let i = 0; i < 1000; i++) capped.request(0, { seq: i, app: 0, key: `k${i}`, slots: 0, tokens: 1 });
  assert.ok(capped.sources <= 100, `${capped.sources} entries`);
});

test('ACL only: no lease traffic at all', () => {
  const sent: unknown[] = [];
  const a = Admission.forSpec(spec({ allow: ['10.0.0.0/8'] }), { request: (r) => sent.push(r), giveBack: (r) => sent.push(r) })!;
  const t = (address: string): Ticket => ({ address, key: null, holds: 0, closed: false, decided: () => {} });
  assert.equal(a.check(t('10.1.1.1')), null);
  assert.equal(a.check(t('::ffff:10.1.1.1')), null);
  assert.equal(a.check(t('192.168.1.1')), 'denied');
  assert.deepEqual(sent, []);
  assert.equal(Admission.forSpec(spec({}), { request: () => {}, giveBack: () => {} }), null, 'nothing configured: no admission');
});

test('a waiter whose grant did not cover what it now needs asks again instead of being refused', () => {
  // The app has one spare slot locally, so the request for a new source asks for no app slot; two
  // connections from that source wait on it; the first takes the spare app slot, so the second
  // must ask for an app slot itself (the grant's app: 0 was not a refusal).
  const w = world(spec({ maxConnections: 16, perSource: { maxConnections: 16, ratePerSecond: 100, burst: 100, prefix6: 64 }, workers: 1 }), 1);
  const first = w.open(0, '10.0.0.9');
  w.flush();
  assert.equal(first.verdict, null);
  const a = w.open(0, '10.0.0.1');
  const b = w.open(0, '10.0.0.1');
  assert.equal(a.verdict, 'wait');
  assert.equal(b.verdict, 'wait');
  w.flush();
  assert.equal(a.verdict, null);
  assert.equal(b.verdict, null, 'served after asking again');
});

test('a handed-over connection takes its leases along (issue 16): the totals never dip, so no extra connection gets in while it moves', () => {
  const w = world(spec({ maxConnections: 4, perSource: { maxConnections: 2, ratePerSecond: 0, burst: 1, prefix6: 64 } }), 3);
  // Holder 0 (the old worker) holds 2 connections from one source: that source is at its limit.
  const a = w.open(0, '10.0.0.1');
  w.flush();
  const b = w.open(0, '10.0.0.1');
  w.flush();
  assert.deepEqual([a.verdict, b.verdict], [null, null]);
  // Both move to holder 1: the old one lets go without giving back, the authority moves the leases.
  for (const t of [a.ticket, b.ticket]) {
    const lease = w.admissions[0]!.handOver(t)!;
    assert.deepEqual(lease, { app: 1, slots: 1, key: t.key });
    const moved = w.authority.transfer(0, 1, lease.key, lease.app, lease.slots);
    assert.deepEqual(moved, { app: 1, slots: 1 });
    w.admissions[1]!.adopt({ address: '10.0.0.1', key: null, holds: 0, closed: false, decided: () => {} }, { ...moved, key: lease.key });
  }
  w.flush();
  // The source is still at its limit everywhere: holder 2 (a sibling) is refused.
  const c = w.open(2, '10.0.0.1');
  w.flush();
  assert.equal(c.verdict, 'over-limit');
  // The old holder exits: dropping it frees nothing the moved connections still use.
  w.authority.dropHolder(0);
  const d = w.open(2, '10.0.0.1');
  w.flush();
  assert.equal(d.verdict, 'over-limit');
});
