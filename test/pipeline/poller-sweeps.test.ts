/**
 * Late, long and escalated sessions, change records and shifting pages, against the Code42 simulator with
 * one controlled clock (the simulator's, and so its Date header, and the poller's): days of polling at a
 * 1-minute interval run in a few seconds.
 */
import assert from 'node:assert/strict';
import { after, afterEach, beforeEach, describe, it } from 'node:test';
import { forwardJobId, stateKeys } from '../../src/store/keys.js';
import type { SessionChange, SessionChangeSink } from '../../src/poll/session-change.js';
import { Code42Simulator, generateTenant } from '../sims/code42/index.js';
import { PollerHarness, type PollerHarnessOptions } from '../helpers/poller-harness.js';
import { deletePrefix, testRedis, uniquePrefix } from '../helpers/redis.js';

const MIN = 60_000;
const HOUR = 60 * MIN;
const DAY = 24 * HOUR;
const POLL = MIN;
const T0 = Date.UTC(2026, 10, 20, 12, 0, 0);

describe('poller: late, long and escalated sessions', () => {
  const cleanup = testRedis();
  let now = T0;
  const clock = (): number => now;
  let sim: Code42Simulator;
  let prefix: string;
  const harnesses: PollerHarness[] = [];
  const harness = (opts: Partial<PollerHarnessOptions> = {}): PollerHarness => {
    const h = new PollerHarness({
      sim,
      prefix,
      clock,
      lookbackMs: 2 * HOUR,
      firstFetchMs: DAY,
      ...opts,
      poller: { deepLookbackMs: 4 * DAY, sweepIntervalMs: HOUR, pollIntervalMs: POLL, ...opts.poller },
    });
    harnesses.push(h);
    return h;
  };

  beforeEach(async () => {
    now = T0;
    prefix = uniquePrefix('sweeps');
  });
  afterEach(async () => {
    await Promise.all(harnesses.splice(0).map((h) => h.close()));
    await sim.close();
    await deletePrefix(cleanup, prefix);
  });
  after(() => cleanup.disconnect());

  async function startSim(endTimeMoves: boolean): Promise<void> {
    sim = new Code42Simulator({ clock, endTimeMoves });
    await sim.start();
    // 600 sessions over the last 4 days (12 pages): the listing is deep, the late ones lie far down it.
    sim.loadTenant(generateTenant({ sessions: 600, seed: 21, beginFrom: T0 - 4 * DAY, beginTo: T0 - MIN, stateWeights: { OPEN: 1 }, severityWeights: [0, 0, 1, 1, 1] }));
  }

  /** Polls every POLL until `until`, calling `at(now)` before each poll; returns when each watched session was enqueued. */
  async function run(
    h: PollerHarness,
    until: number,
    at: (t: number) => void = () => undefined,
    watch: string[] = [],
  ): Promise<{ enqueuedAt: Map<string, number>; enqueued: number; listCalls: number; looks: Map<number, string | null> }> {
    const enqueuedAt = new Map<string, number>();
    const looks = new Map<number, string | null>();
    let enqueued = 0;
    let listCalls = 0;
    while (now <= until) {
      at(now);
      const r = await h.poller.runOnce();
      assert.ok(r);
      enqueued += r.enqueued;
      listCalls += r.pages;
      looks.set(now, r.countLook);
      for (const id of watch) if (!enqueuedAt.has(id) && (await h.hasJobFor(id))) enqueuedAt.set(id, now);
      now += POLL;
    }
    return { enqueuedAt, enqueued, listCalls, looks };
  }

  for (const endTimeMoves of [true, false]) {
    it(`forwards sessions visible 1 h, 26 h and 70 h after they began, a long one and an escalated one, each once (endTime ${endTimeMoves ? 'moves' : 'stays'})`, async () => {
      await startSim(endTimeMoves);
      const V = T0 + 10 * MIN; // when the late ones become visible
      const late = (id: string, lagMs: number): string =>
        sim.addSession({ sessionId: id, beginTime: V - lagMs, endTime: V - lagMs + 5 * MIN, scores: [{ score: 30, severity: 3, sourceTimestamp: V }] }, { visibleAt: V }).sessionId;
      const late1h = late('late-1h', HOUR);
      const late26h = late('late-26h', 26 * HOUR);
      const late70h = late('late-70h', 70 * HOUR);
      // Long: began 8 h ago, first alert now (its end time is that alerting activity, in both readings).
      const long = sim.addSession({ sessionId: 'long-8h', beginTime: V - 8 * HOUR, endTime: V, scores: [{ score: 40, severity: 4, sourceTimestamp: V }] }, { visibleAt: V }).sessionId;
      // Moderate (outside critical,high) from T0 - 1 h; escalated to high 3 h after it began.
      const escalated = sim.addSession({ sessionId: 'escalated', beginTime: T0 - HOUR, endTime: T0 - 50 * MIN, scores: [{ score: 20, severity: 2, sourceTimestamp: T0 - 50 * MIN }] }).sessionId;
      // A long one that is visible and moderate from the start and gets high alerting activity later.
      const longEscalated = sim.addSession({ sessionId: 'long-escalated', beginTime: T0 - 8 * HOUR, endTime: T0 - 7 * HOUR, scores: [{ score: 20, severity: 2, sourceTimestamp: T0 - 7 * HOUR }] }).sessionId;

      const h = harness({ severities: ['critical', 'high'], firstFetchMs: 4 * DAY });
      const watched = [late1h, late26h, late70h, long, escalated, longEscalated];
      const { enqueuedAt, enqueued, listCalls, looks } = await run(
        h,
        T0 + 3 * HOUR,
        (t) => {
          if (t === T0 - HOUR + 3 * HOUR) sim.addActivity(escalated, { at: t, severity: 3 });
          if (t === T0 + 30 * MIN) sim.addActivity(longEscalated, { at: t, severity: 3 });
        },
        watched,
      );

      const expected = sim.sessionIds().filter((id) => {
        const s = sim.getSession(id);
        return s !== undefined && Math.max(...s.scores.map((x) => x.severity)) >= 3;
      });
      const ids = await h.jobIds();
      assert.equal(ids.length, expected.length, 'one job per session in the filter');
      assert.deepEqual(new Set(ids), new Set(expected.map(forwardJobId)));
      assert.equal(enqueued, expected.length, 'no session enqueued twice');
      for (const id of watched) assert.ok(enqueuedAt.has(id), `${id} forwarded`);
      // The long session, and (when end times move) the escalations, by the poll that follows (one later when
      // that poll read the `out` listing first: new sessions in the filter are not on it).
      const byNextPoll = (id: string, t: number): void => {
        const got = enqueuedAt.get(id);
        assert.ok(got === t || (got === t + POLL && looks.get(t) === 'out'), `${id} at ${got} for a change at ${t} (that poll looked at ${looks.get(t)})`);
      };
      byNextPoll(long, V);
      assert.ok((enqueuedAt.get(late1h) as number) - V <= (2 * HOUR) / 8 + POLL, 'late by 1 h: within the recent sweep');
      if (endTimeMoves) {
        byNextPoll(escalated, T0 + 2 * HOUR);
        byNextPoll(longEscalated, T0 + 30 * MIN);
      }
      for (const id of [late26h, late70h]) assert.ok((enqueuedAt.get(id) as number) - V <= 2 * HOUR + POLL, `${id} within two sweep intervals`);
      // 181 polls, 600+ sessions over 4 days read in full three times by the deep sweep (1 h):
      // far fewer list calls than re-reading the window at every poll (181 × 13).
      assert.ok(listCalls < 181 * 13 / 3, `list calls ${listCalls}`);
    });
  }

  it('emits exactly one change record per change of a forwarded session (default stream sink)', async () => {
    await startSim(true);
    const id = sim.addSession({ sessionId: 'tracked-1', beginTime: T0 - 30 * MIN, endTime: T0 - 20 * MIN, scores: [{ score: 30, severity: 3, sourceTimestamp: T0 - 20 * MIN }] }).sessionId;
    const h = harness();
    const changesKey = stateKeys(prefix).changes;
    await run(h, T0 + 5 * MIN);
    assert.equal(await cleanup.xlen(changesKey), 0, 'nothing changed yet');
    // New events, then a state change, then a new alert with a higher severity; polls in between and after.
    await run(h, T0 + 20 * MIN, (t) => {
      if (t === T0 + 8 * MIN) sim.addActivity(id, { at: t, events: 3 });
      if (t === T0 + 12 * MIN) sim.addActivity(id, { at: t, state: 'IN_PROGRESS' });
      if (t === T0 + 15 * MIN) sim.addActivity(id, { at: t, severity: 4, alertId: 'alert-new' });
    });
    const entries = await cleanup.xrange(changesKey, '-', '+');
    const records = entries.map(([, fields]) => JSON.parse(fields[fields.indexOf('change') + 1] as string) as SessionChange);
    assert.deepEqual(records.map((r) => r.seq), [1, 2, 3]);
    assert.deepEqual(records.map((r) => r.kinds), [['updated', 'events'], ['updated', 'state'], ['updated', 'severity', 'alerts']]);
    assert.equal(records[1]?.previous.state, 'OPEN');
    assert.equal(records[2]?.previous.severity, 3);
    assert.ok(records.every((r) => r.sessionId === id && r.session.sessionId === id));
    // A session that left the filter (IN_PROGRESS) is still tracked: a later change still makes a record.
    await run(h, T0 + 30 * MIN, (t) => {
      if (t === T0 + 25 * MIN) sim.addActivity(id, { at: t, state: 'CLOSED_TP' });
    });
    assert.equal(await cleanup.xlen(changesKey), 4);
  });

  it('sends change records to an injected sink, and a restarted poller does not repeat them', async () => {
    await startSim(false);
    const id = sim.addSession({ sessionId: 'tracked-2', beginTime: T0 - 30 * MIN, endTime: T0 - 20 * MIN }).sessionId;
    const got: SessionChange[] = [];
    const sink: SessionChangeSink = { emit: async (c) => void got.push(c) };
    const first = harness({ poller: { changeSink: sink } });
    await run(first, T0 + 2 * MIN);
    sim.addActivity(id, { at: now, state: 'IN_PROGRESS' }); // end time stays: found by the recent sweep
    await run(first, T0 + 20 * MIN);
    await first.close();
    harnesses.splice(harnesses.indexOf(first), 1);
    const second = harness({ poller: { changeSink: sink } });
    await run(second, T0 + 60 * MIN);
    assert.deepEqual(got.map((c) => [c.seq, c.kinds.join(',')]), [[1, 'updated,state']]);
  });

  it('misses nothing when a session moves to the front between two page reads', async () => {
    await startSim(true);
    const h = harness();
    await run(h, T0); // first poll: everything so far
    // 120 new sessions (3 pages) since; while the poller reads page 1, an older one moves to the front.
    for (let i = 0; i < 120; i++) sim.addSession({ sessionId: `new-${i}`, beginTime: T0 + i * 100, endTime: T0 + 30_000 + i * 100 });
    const mover = sim.sessionIds()[5] as string;
    sim.setListHook((page) => {
      if (page === 1) sim.addActivity(mover, { at: now, events: 1 });
    });
    now += POLL;
    const r = await h.poller.runOnce();
    sim.setListHook(null);
    assert.ok(r);
    const ids = new Set(await h.jobIds());
    for (let i = 0; i < 120; i++) assert.ok(ids.has(forwardJobId(`new-${i}`)), `new-${i}`);
    assert.equal(r.enqueued, 120);
  });
});
