import assert from 'node:assert/strict';
import { after, afterEach, beforeEach, describe, it } from 'node:test';
import { forwardJobId, stateKeys } from '../../src/store/keys.js';
import { PollState } from '../../src/poll/poll-state.js';
import { RejectedLog } from '../../src/poll/rejected-log.js';
import { Code42Simulator, generateTenant, type WireSession } from '../sims/code42/index.js';
import { PollerHarness } from '../helpers/poller-harness.js';
import { deletePrefix, testRedis, uniquePrefix } from '../helpers/redis.js';

const HOUR = 3_600_000;

function latest(s: WireSession): string {
  return [...s.states].sort((a, b) => a.sourceTimestamp - b.sourceTimestamp).at(-1)?.state ?? '';
}
function maxSeverity(s: WireSession): number {
  return Math.max(0, ...s.scores.map((x) => x.severity));
}

describe('poller', () => {
  const cleanup = testRedis();
  let sim: Code42Simulator;
  let prefix: string;
  const harnesses: PollerHarness[] = [];
  const harness = (opts: Omit<ConstructorParameters<typeof PollerHarness>[0], 'sim' | 'prefix'> = {}): PollerHarness => {
    const h = new PollerHarness({ sim, prefix, ...opts });
    harnesses.push(h);
    return h;
  };

  beforeEach(async () => {
    sim = new Code42Simulator();
    await sim.start();
    prefix = uniquePrefix('poller');
  });
  afterEach(async () => {
    await Promise.all(harnesses.splice(0).map((h) => h.close()));
    await sim.close();
    await deletePrefix(cleanup, prefix);
  });
  after(() => cleanup.disconnect());

  it('enqueues each of 230 matching sessions spread over 5 pages exactly once', async () => {
    const now = Date.now();
    sim.loadTenant(
      generateTenant({ sessions: 230, seed: 3, beginFrom: now - 90 * 60_000, beginTo: now - 60_000, stateWeights: { OPEN: 3, OPEN_NEW_DATA: 1 } }),
    );
    const h = harness();
    const first = await h.poller.runOnce();
    assert.ok(first);
    assert.equal(first.pages, 5);
    assert.equal(first.enqueued, 230);
    const ids = await h.jobIds();
    assert.equal(ids.length, 230);
    assert.equal(new Set(ids).size, 230);
    assert.deepEqual(new Set(ids), new Set(sim.sessionIds().map(forwardJobId)));

    const second = await h.poller.runOnce();
    assert.ok(second);
    // The second poll reads the listing newest first only down to the first poll (one page here), and
    // enqueues none of it again.
    assert.equal(second.pages, 1);
    assert.equal(second.fetched, 50);
    assert.equal(second.enqueued, 0);
    assert.equal(second.alreadySeen, 50);
    assert.equal((await h.jobIds()).length, 230);
  });

  it('enqueues exactly the sessions whose current severity and state match the filter', async () => {
    const now = Date.now();
    sim.loadTenant(generateTenant({ sessions: 230, seed: 5, beginFrom: now - 3 * HOUR, beginTo: now - 60_000 }));
    const expected = sim
      .sessionIds()
      .map((id) => sim.getSession(id) as WireSession)
      .filter((s) => [4, 3].includes(maxSeverity(s)) && ['OPEN', 'OPEN_NEW_DATA'].includes(latest(s)))
      .map((s) => forwardJobId(s.sessionId));
    assert.ok(expected.length > 20 && expected.length < 230, `fixture should mix severities and states (${expected.length})`);

    const h = harness({ severities: ['critical', 'high'] });
    const result = await h.poller.runOnce();
    assert.ok(result);
    assert.equal(result.enqueued, expected.length);
    assert.deepEqual(new Set(await h.jobIds()), new Set(expected));
    // The filter is applied here, not sent: the poller reads every severity and state, so that a session
    // escalating into the filter, or a forwarded one leaving it, is seen.
    const list = sim.requests.find((r) => r.endpoint === 'sessions.list');
    assert.ok(list);
    const q = new URLSearchParams(list.query);
    assert.deepEqual(q.getAll('severity'), []);
    assert.deepEqual(q.getAll('state'), []);
    assert.equal(q.get('order_by'), 'end_time');
    assert.equal(q.get('sort_direction'), 'DESC');
    assert.equal(result.filtered, 230 - expected.length);
    assert.equal(q.get('page_size'), '50');
    assert.equal(q.get('has_alerts'), 'true');
  });

  it('after a restart enqueues nothing twice and everything created while it was down', async () => {
    const now = Date.now();
    const tenant = generateTenant({ sessions: 60, seed: 9, beginFrom: now - 2 * HOUR, beginTo: now - 30 * 60_000, stateWeights: { OPEN: 1 } });
    sim.loadTenant(tenant);
    const first = harness();
    assert.equal((await first.poller.runOnce())?.enqueued, 60);
    await first.close();
    harnesses.splice(harnesses.indexOf(first), 1);

    // While it is down: new sessions, one of which began before the last checkpoint.
    const down = generateTenant({ sessions: 15, seed: 10, idPrefix: 'down', beginFrom: now - 20 * 60_000, beginTo: now, stateWeights: { OPEN: 1 } });
    sim.loadTenant(down);

    const restarted = harness();
    const result = await restarted.poller.runOnce();
    assert.ok(result);
    assert.equal(result.enqueued, 15);
    const ids = await restarted.jobIds();
    assert.equal(ids.length, 75);
    assert.equal(new Set(ids).size, 75);
  });

  it('catches a session that becomes visible after the checkpoint passed its begin time, once', async () => {
    let now = Date.UTC(2026, 10, 20, 12, 0, 0);
    const clock = (): number => now;
    await sim.close();
    sim = new Code42Simulator({ clock });
    await sim.start();
    const late = sim.addSession(
      { sessionId: 'late-session-1', beginTime: now - 5 * 60_000, endTime: now - 4 * 60_000 },
      { visibleAt: now + 10 * 60_000 },
    );
    sim.addSession({ sessionId: 'on-time-1', beginTime: now - 60_000, endTime: now - 30_000 });
    const h = harness({ clock, lookbackMs: 2 * HOUR });

    assert.equal((await h.poller.runOnce())?.enqueued, 1);
    assert.equal(await h.hasJobFor(late.sessionId), false);
    now += 11 * 60_000; // the checkpoint moved past the late session's begin time; it is visible now
    const second = await h.poller.runOnce();
    assert.equal(second?.enqueued, 1);
    assert.equal(await h.hasJobFor(late.sessionId), true);
    // The checkpoint moves with each poll whose first read is the unfiltered listing (a poll that reads a
    // filtered one first, for its count, leaves it: see count-watch.ts).
    let lastUnfiltered = 0;
    for (let i = 0; i < 2; i++) {
      now += 60_000;
      const r = await h.poller.runOnce();
      assert.equal(r?.enqueued, 0);
      if (r?.countLook === null) lastUnfiltered = now;
    }
    const checkpoint = await new PollState(h.redis, stateKeys(prefix)).getCheckpoint();
    assert.ok(lastUnfiltered > 0);
    assert.equal(checkpoint, lastUnfiltered);
  });

  it('refreshes a revoked token once and the poll still succeeds', async () => {
    const now = Date.now();
    sim.loadTenant(generateTenant({ sessions: 120, seed: 11, beginFrom: now - HOUR, beginTo: now, stateWeights: { OPEN: 1 } }));
    const h = harness();
    await h.poller.runOnce();
    assert.equal(sim.stats().tokensIssued, 1);
    sim.expireAllTokens();
    sim.resetStats();
    const result = await h.poller.runOnce();
    assert.ok(result);
    assert.equal(result.recentPages, 1);
    const stats = sim.stats();
    assert.equal(stats.tokensIssued, 1);
    assert.equal(stats.byStatus['401'], 1);
  });

  it('refreshes a token ahead of its expiry without a 401', async () => {
    let now = Date.now();
    const clock = (): number => now;
    await sim.close();
    sim = new Code42Simulator({ clock, tokenTtlSeconds: 900 });
    await sim.start();
    sim.addSession({ sessionId: 's-1', beginTime: now - 60_000 });
    const h = harness({ clock });
    await h.poller.runOnce();
    now += 14.5 * 60_000; // inside the refresh margin, before the token dies
    await h.poller.runOnce();
    assert.equal(sim.stats().tokensIssued, 2);
    assert.equal(sim.stats().byStatus['401'] ?? 0, 0);
  });

  it('waits out a 429 with Retry-After: 2 and then succeeds', async () => {
    sim.loadTenant(generateTenant({ sessions: 10, seed: 12, stateWeights: { OPEN: 1 } }));
    sim.failNext(1, { status: 429, retryAfterSeconds: 2, path: /^\/v1\/sessions$/ });
    const h = harness();
    const started = Date.now();
    const result = await h.poller.runOnce();
    const took = Date.now() - started;
    assert.equal(result?.enqueued, 10);
    assert.ok(took >= 1_900, `should have waited for Retry-After (took ${took} ms)`);
    assert.equal(sim.stats().byStatus['429'], 1);
  });

  it('never enqueues a session twice when two pollers run at once', async () => {
    const now = Date.now();
    sim.loadTenant(generateTenant({ sessions: 150, seed: 13, beginFrom: now - HOUR, beginTo: now, stateWeights: { OPEN: 1 } }));
    sim.setLatency(5);
    const a = harness();
    const b = harness();
    const results = await Promise.all([a.poller.runOnce(), b.poller.runOnce(), a.poller.runOnce(), b.poller.runOnce()]);
    const enqueued = results.reduce((sum, r) => sum + (r?.enqueued ?? 0), 0);
    assert.equal(enqueued, 150);
    const ids = await a.jobIds();
    assert.equal(ids.length, 150);
    assert.equal(new Set(ids).size, 150);
  });

  it('records a session that fails validation, with its reason, once, and keeps the good ones', async () => {
    const now = Date.now();
    sim.addSession({ sessionId: 'good-1', beginTime: now - 60_000 });
    sim.addRawSession({ tenantId: 't', actorId: 'a', beginTime: now - 60_000, scores: [{ severity: 3 }], states: [{ state: 'OPEN', sourceTimestamp: now }], triggeredAlerts: [] });
    sim.addRawSession({ sessionId: 'bad-type-1', beginTime: 'yesterday', scores: [{ severity: 3 }], states: [{ state: 'OPEN', sourceTimestamp: now }], triggeredAlerts: [] });
    sim.addRawSession('not a session');
    // A state this version does not know is a valid session outside the filter: skipped and counted, not rejected.
    sim.addRawSession({ sessionId: 'new-state-1', beginTime: now - 1000, scores: [{ severity: 3 }], states: [{ state: 'SNOOZED', sourceTimestamp: now }], triggeredAlerts: [{ ruleId: 'r' }] });
    const h = harness();
    const first = await h.poller.runOnce();
    assert.equal(first?.enqueued, 1);
    assert.equal(first?.rejected, 3);
    assert.equal(first?.filtered, 1);
    assert.equal((await h.poller.runOnce())?.rejected, 0);

    const records = await new RejectedLog(h.redis, stateKeys(prefix)).list();
    assert.equal(records.length, 3);
    const reasons = records.map((r) => r.reason).join('\n');
    assert.match(reasons, /field sessionId/);
    assert.match(reasons, /session bad-type-1: field beginTime/);
    assert.match(reasons, /^session: field \(root\): /m);
    assert.ok(!records.some((r) => r.sessionId === 'new-state-1'));
    assert.ok(records.some((r) => r.sessionId === 'bad-type-1' && r.raw.includes('yesterday')));
  });
});
