/**
 * Changes that do not move a session's end time, late sessions of a young deployment, a Redis loss and a
 * listing that never ends: against the Code42 simulator on one virtual clock (the simulator's data, its
 * Date header, and the poller), 30 s polls, the production SWEEP_INTERVAL (8 h) and LOOKBACK (2 h), so
 * what arrives within minutes is the count detection's doing, not a sweep's.
 */
import assert from 'node:assert/strict';
import { after, afterEach, beforeEach, describe, it } from 'node:test';
import { forwardJobId, stateKeys } from '../../src/store/keys.js';
import { PollState, requestWindowReread } from '../../src/poll/poll-state.js';
import { CountIndex } from '../../src/poll/count-index.js';
import type { SessionChange, SessionChangeSink } from '../../src/poll/session-change.js';
import { StateMarker } from '../../src/guard/state-marker.js';
import { Readiness } from '../../src/ops/readiness.js';
import { UpstreamStatus } from '../../src/guard/upstream-status.js';
import type { PollResult } from '../../src/poll/poller.js';
import { Code42Simulator, generateTenant } from '../sims/code42/index.js';
import { PollerHarness, type PollerHarnessOptions } from '../helpers/poller-harness.js';
import { captureLogger, silentLogger } from '../helpers/logs.js';
import { deletePrefix, testRedis, uniquePrefix } from '../helpers/redis.js';

const MIN = 60_000;
const HOUR = 60 * MIN;
const DAY = 24 * HOUR;
const POLL = 30_000;
const T0 = Date.UTC(2026, 10, 20, 12, 0, 0);

describe('poller: count detection', () => {
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
      severities: ['critical', 'high'],
      ...opts,
      poller: { deepLookbackMs: 4 * DAY, sweepIntervalMs: 8 * HOUR, pollIntervalMs: POLL, ...opts.poller },
    });
    harnesses.push(h);
    return h;
  };

  beforeEach(() => {
    now = T0;
    prefix = uniquePrefix('counts');
  });
  afterEach(async () => {
    await Promise.all(harnesses.splice(0).map((h) => h.close()));
    await sim.close();
    await deletePrefix(cleanup, prefix);
  });
  after(() => cleanup.disconnect());

  async function startSim(opts: ConstructorParameters<typeof Code42Simulator>[0] = {}, background = 600): Promise<void> {
    sim = new Code42Simulator({ clock, ...opts });
    await sim.start();
    // Background: sessions over the last 4 days (12 pages), open, every severity but no-risk.
    if (background > 0) {
      sim.loadTenant(generateTenant({ sessions: background, seed: 31, beginFrom: T0 - 4 * DAY, beginTo: T0 - MIN, stateWeights: { OPEN: 1 }, severityWeights: [0, 1, 1, 1, 1] }));
    }
  }

  /** Polls every POLL while now <= until, calling `at(now)` first; notes when each watched session got a job. */
  async function run(h: PollerHarness, until: number, at: (t: number) => void = () => undefined, watch: string[] = []): Promise<{ enqueuedAt: Map<string, number>; results: PollResult[] }> {
    const enqueuedAt = new Map<string, number>();
    const results: PollResult[] = [];
    while (now <= until) {
      at(now);
      const r = await h.poller.runOnce();
      assert.ok(r);
      results.push(r);
      for (const id of watch) if (!enqueuedAt.has(id) && (await h.hasJobFor(id))) enqueuedAt.set(id, now);
      now += POLL;
    }
    return { enqueuedAt, results };
  }

  for (const everyChange of [false, true]) {
    const reading = everyChange ? 'end time moves with every change' : 'end time moves only with new activity';
    it(`a new deployment forwards 20 sessions that surface 1–3 days after they began, before its FIRST_FETCH, each once (${reading})`, async () => {
      await startSim({ endTimeMovesOnEveryChange: everyChange });
      // Visible at the first start, begun before FIRST_FETCH: imported, not forwarded.
      const before = sim.sessionIds().filter((id) => (sim.getSession(id)?.beginTime as number) < T0 - DAY);
      const late: string[] = [];
      for (let i = 1; i <= 20; i++) {
        const begin = T0 - DAY - i * 75 * MIN;
        const visibleAt = T0 + 5 * MIN + i * 4 * MIN;
        late.push(sim.addSession({ sessionId: `late-${i}`, beginTime: begin, endTime: begin + 20 * MIN, scores: [{ score: 30, severity: 3, sourceTimestamp: begin }] }, { visibleAt }).sessionId);
      }
      const h = harness();
      const { enqueuedAt, results } = await run(h, T0 + 90 * MIN, () => undefined, late);
      for (const [i, id] of late.entries()) {
        const visibleAt = T0 + 5 * MIN + (i + 1) * 4 * MIN;
        const at = enqueuedAt.get(id);
        assert.ok(at !== undefined, `${id} forwarded`);
        assert.ok(at - visibleAt <= 5 * MIN, `${id} within 5 min (${(at - visibleAt) / 1000} s)`);
        assert.ok(sim.getSession(id) && (sim.getSession(id)?.beginTime as number) < T0 - DAY, 'began before the first start minus FIRST_FETCH');
      }
      const ids = new Set(await h.jobIds());
      for (const id of before) assert.ok(!ids.has(forwardJobId(id)), `${id} was visible at the first start and is older than FIRST_FETCH`);
      const enqueued = results.reduce((n, r) => n + r.enqueued, 0);
      assert.equal(enqueued, ids.size, 'no session enqueued twice');
      assert.ok(results.at(-1)?.countState === 'active');
    });

  }

  // The state filter read both ways: on the current state, and on any state in the history (then the
  // `out` listing also holds reopened sessions, and every closed one stays in it).
  for (const [everyChange, stateFilter] of [[false, 'latest'], [true, 'latest'], [false, 'any-in-history']] as const) {
    const reading = `${everyChange ? 'end time moves with every change' : 'end time moves only with new activity'}${stateFilter === 'latest' ? '' : ', state filter on any state in the history'}`;
    it(`carries 10 console closes and 5 escalations without activity within 5 minutes (${reading})`, async () => {
      await startSim({ endTimeMovesOnEveryChange: everyChange, stateFilter });
      const got: SessionChange[] = [];
      const sink: SessionChangeSink = { emit: async (c) => void got.push(c) };
      const h = harness({ firstFetchMs: 4 * DAY, poller: { changeSink: sink } });
      await run(h, T0 + 10 * MIN);
      const forwarded = new Set((await h.jobIds()));
      const all = sim.sessionIds().map((id) => sim.getSession(id)).filter((s) => s !== undefined);
      // Closes: forwarded sessions that ended 3 h to 3 days ago (below the recent sweep's reach).
      const toClose = all.filter((s) => forwarded.has(forwardJobId(s.sessionId)) && s.endTime < T0 - 3 * HOUR).slice(0, 10);
      // Escalations: moderate sessions (outside critical,high) raised to high, no new activity.
      const toRaise = all.filter((s) => Math.max(...s.scores.map((x) => x.severity)) === 2 && s.endTime < T0 - 3 * HOUR).slice(0, 5);
      assert.equal(toClose.length, 10);
      assert.equal(toRaise.length, 5);
      const changedAt = new Map<string, number>();
      const { enqueuedAt, results } = await run(
        h,
        T0 + 60 * MIN,
        (t) => {
          toClose.forEach((s, i) => {
            if (t === T0 + 12 * MIN + i * 3 * MIN) {
              sim.consoleChangeState(s.sessionId, i % 2 === 0 ? 'CLOSED_TP' : 'CLOSED_FP');
              changedAt.set(s.sessionId, t);
            }
          });
          toRaise.forEach((s, i) => {
            if (t === T0 + 13 * MIN + i * 5 * MIN) {
              sim.escalate(s.sessionId, 3);
              changedAt.set(s.sessionId, t);
            }
          });
        },
        toRaise.map((s) => s.sessionId),
      );
      for (const s of toClose) {
        const record = got.find((c) => c.sessionId === s.sessionId && c.kinds.includes('state'));
        assert.ok(record, `close of ${s.sessionId} recorded`);
        const delay = record.detectedAt - (changedAt.get(s.sessionId) as number);
        assert.ok(delay <= 5 * MIN, `close of ${s.sessionId} within 5 min (${delay / 1000} s)`);
      }
      for (const s of toRaise) {
        const delay = (enqueuedAt.get(s.sessionId) as number) - (changedAt.get(s.sessionId) as number);
        assert.ok(delay <= 5 * MIN, `escalation of ${s.sessionId} forwarded within 5 min (${delay / 1000} s)`);
      }
      assert.equal(got.filter((c) => c.kinds.includes('state')).length, 10, 'one record per close');
      assert.ok(results.every((r) => r.countState === 'active'));
      const probes = results.reduce((n, r) => n + r.countProbes, 0);
      assert.ok(probes < results.length, `count probes ${probes} in ${results.length} polls`);
    });
  }

  it("the daemon's own close, reported to the count index, costs no count search", async () => {
    await startSim();
    const h = harness({ firstFetchMs: 4 * DAY });
    await run(h, T0 + 2 * MIN);
    const id = (await h.jobIds()).map((j) => j.replace(/^session-/, ''))[100] as string;
    // What the state sync does: change-state in Code42, then tell the index.
    sim.consoleChangeState(id, 'CLOSED_TP', 'key-sim-client');
    await new CountIndex(h.redis, stateKeys(prefix)).markState([id], true);
    const { results } = await run(h, T0 + 10 * MIN);
    assert.equal(results.reduce((n, r) => n + r.countPages, 0), 0, 'no slice read');
    assert.equal(results.reduce((n, r) => n + r.countProbes, 0), 0, 'no probe');
  });

  it('reads the cheap side of a slice: a close where few are closed, an escalation where few are low, without halving the window', async () => {
    await startSim({}, 0);
    // 600 sessions over 4 days, about 5 % of them low (outside critical,high), all open.
    sim.loadTenant(generateTenant({ sessions: 600, seed: 47, beginFrom: T0 - 4 * DAY, beginTo: T0 - MIN, stateWeights: { OPEN: 1 }, severityWeights: [0, 1, 0, 10, 10] }));
    const got: SessionChange[] = [];
    const h = harness({ firstFetchMs: 4 * DAY, poller: { changeSink: { emit: async (c) => void got.push(c) } } });
    await run(h, T0 + 2 * MIN);
    const sessions = sim
      .sessionIds()
      .map((id) => sim.getSession(id))
      .filter((x): x is NonNullable<typeof x> => x !== undefined && x.endTime < T0 - 3 * HOUR);
    const forwarded = new Set(await h.jobIds());
    const toClose = sessions.find((x) => forwarded.has(forwardJobId(x.sessionId)));
    const toRaise = sessions.find((x) => Math.max(...x.scores.map((sc) => sc.severity)) === 1);
    assert.ok(toClose && toRaise);
    const changedAt = now + POLL;
    const { enqueuedAt, results } = await run(
      h,
      changedAt + 6 * MIN,
      (t) => {
        if (t !== changedAt) return;
        sim.consoleChangeState(toClose.sessionId, 'CLOSED_TP');
        sim.escalate(toRaise.sessionId, 3);
      },
      [toRaise.sessionId],
    );
    const closed = got.find((c) => c.sessionId === toClose.sessionId && c.kinds.includes('state'));
    assert.ok(closed && closed.detectedAt - changedAt <= 5 * MIN, 'close carried within 5 minutes');
    assert.ok((enqueuedAt.get(toRaise.sessionId) as number) - changedAt <= 5 * MIN, 'escalation forwarded within 5 minutes');
    // The closed sessions (one) and the low ones (about 30) each fit a page: no probe, a page each and the
    // escalated session read alone. Halving the 600 down to a page would take about 4 probes a change.
    assert.equal(results.reduce((n, r) => n + r.countProbes, 0), 0, 'no probe');
    const reads = results.reduce((n, r) => n + r.countPages, 0);
    assert.ok(reads >= 2 && reads <= 4, `${reads} reads`);
  });

  it('a lasting difference (an item that fails validation) is read once per count, then kept as a gap, not chased every poll', async () => {
    await startSim();
    const h = harness({ firstFetchMs: 4 * DAY });
    await run(h, T0 + 2 * MIN);
    // Code42 lists it, the daemon can never count it as read.
    sim.addRawSession({ sessionId: 'broken-1', beginTime: T0 - 2 * DAY, endTime: 'yesterday' }, { visibleAt: now });
    const { results } = await run(h, T0 + 30 * MIN);
    const reads = results.map((r) => r.countPages);
    // Once per family that lets it through: `all` (the next poll), `out` and `sev` at their first looks (each its own poll).
    assert.ok(reads.filter((n) => n > 0).length <= 3, `slices read in three polls at most: ${reads.join(',')}`);
    assert.ok(reads.slice(10).every((n) => n === 0), 'then never again');
    assert.ok(results.at(-1)?.countState === 'active');
    assert.equal(results.reduce((n, r) => n + r.rejected, 0), 1, 'recorded in the rejected log once');
  });

  it('without totalCount: no count detection, the sweeps at their documented cadence find a late session', async () => {
    await startSim({ totalCount: 'omitted' });
    const h = harness({ poller: { sweepIntervalMs: HOUR } });
    const begin = T0 - 2 * DAY;
    sim.addSession({ sessionId: 'late-nc', beginTime: begin, endTime: begin + 10 * MIN, firstObserved: T0 + 5 * MIN, scores: [{ score: 40, severity: 4, sourceTimestamp: begin }] }, { visibleAt: T0 + 5 * MIN });
    const { enqueuedAt, results } = await run(h, T0 + 2 * HOUR + 5 * MIN, () => undefined, ['late-nc']);
    assert.ok(results.slice(1).every((r) => r.countState === 'no_total_count'));
    assert.deepEqual(results.filter((r) => r.countProbes !== 0).map((r) => [r.countState, r.countProbes]), []);
    assert.ok((enqueuedAt.get('late-nc') as number) - (T0 + 5 * MIN) <= 2 * HOUR + POLL, 'within two sweep intervals');
    assert.ok(results.reduce((n, r) => n + (r.sweepPages.deep ?? 0), 0) > 12, 'the deep sweep runs (more than once over the 12 pages)');
  });

  it('Redis wiped with 40 sessions queued, 20 of them ended hours ago: a poll in flight writes no checkpoint, all 40 queued again within 5 minutes, once', async () => {
    await startSim({}, 0);
    const ids: string[] = [];
    for (let i = 0; i < 20; i++) ids.push(sim.addSession({ sessionId: `old-${i}`, beginTime: T0 - 6 * HOUR + i * MIN, endTime: T0 - 5 * HOUR + i * MIN, scores: [{ score: 30, severity: 3, sourceTimestamp: T0 - 5 * HOUR }] }).sessionId);
    for (let i = 0; i < 20; i++) ids.push(sim.addSession({ sessionId: `new-${i}`, beginTime: T0 - 10 * MIN + i * 10_000, endTime: T0 - 5 * MIN + i * 10_000, scores: [{ score: 30, severity: 3, sourceTimestamp: T0 - 5 * MIN }] }).sessionId);
    const keys = stateKeys(prefix);
    await cleanup.set(keys.marker, JSON.stringify({ since: T0 - DAY }));
    const h = harness();
    const marker = new StateMarker({ redis: h.redis, keys, logger: silentLogger(), checkIntervalMs: 60_000, doubtTtlMs: DAY, clock, requestReread: (since) => requestWindowReread(h.redis, keys, since) });
    await run(h, T0 + 2 * MIN);
    assert.equal((await h.jobIds()).length, 40, 'all 40 queued (the old ones too: they began within DEEP_LOOKBACK)');

    // A flush while a poll is between two reads.
    let flushed = false;
    sim.setListHook(() => {
      if (flushed) return;
      flushed = true;
      void cleanup.flushall();
    });
    const inFlight = await h.poller.runOnce();
    sim.setListHook(null);
    assert.ok(inFlight);
    assert.equal(inFlight.checkpointMoved, false);
    assert.equal(await cleanup.get(keys.checkpoint), null, 'no checkpoint written over the loss');
    now += POLL;
    await marker.check('running');

    const watch = [...ids];
    const { enqueuedAt, results } = await run(h, now + 5 * MIN, () => undefined, watch);
    for (const id of ids) assert.ok(enqueuedAt.has(id), `${id} queued again`);
    assert.ok(Math.max(...enqueuedAt.values()) - (T0 + 2 * MIN) <= 5 * MIN + 2 * POLL);
    const jobs = await h.jobIds();
    assert.equal(jobs.length, 40);
    assert.equal(new Set(jobs).size, 40);
    assert.equal(inFlight.enqueued + results.reduce((n, r) => n + r.enqueued, 0), 40, 'each enqueued once after the loss (the poll in flight re-enqueued its page)');
    assert.equal(await new PollState(cleanup, keys).rereadRequest(), null, 'the re-read was served');
  });

  it('a listing that never ends: one log line naming it, /readyz degraded, a few pages a poll, new sessions still forwarded', async () => {
    await startSim({ paging: 'ignored', totalCount: 'omitted' }, 0);
    // 120 sessions that ended in the last 3 minutes: the recent read itself needs more than one page.
    for (let i = 0; i < 120; i++) sim.addSession({ sessionId: `s-${i}`, beginTime: T0 - 10 * MIN + i * 1_000, endTime: T0 - 3 * MIN + i * 1_000, scores: [{ score: 30, severity: 3, sourceTimestamp: T0 - 3 * MIN }] });
    const log = captureLogger('info');
    const h = harness({ logger: log.logger });
    const { results } = await run(h, T0 + 5 * MIN, (t) => {
      if (t === T0 + 2 * MIN) sim.addSession({ sessionId: 'fresh-1', beginTime: t - MIN, endTime: t - 10_000, scores: [{ score: 40, severity: 4, sourceTimestamp: t }] });
    });
    const lines = log.lines.filter((l) => l.includes('does not end'));
    assert.equal(lines.length, 1, lines.join('\n'));
    assert.match(lines[0] as string, /GET \/v1\/sessions \(recent\) does not end/);
    assert.ok(results.every((r) => r.pages <= 4), `pages per poll: ${results.map((r) => r.pages).join(',')}`);
    assert.ok(results.every((r) => r.listingTrouble !== null));
    assert.equal(results[0]?.checkpointMoved, false, 'the recent read did not reach the previous poll: no checkpoint');
    assert.ok(await h.hasJobFor('fresh-1'), 'a new session at the top is still forwarded');
    const readiness = new Readiness({
      redis: h.redis,
      pollState: new PollState(h.redis, stateKeys(prefix)),
      pollLockKey: stateKeys(prefix).pollLock,
      status: new UpstreamStatus(),
      pollIntervalMs: POLL,
      startedAt: now,
      shuttingDown: () => false,
      clock,
    });
    const report = await readiness.check();
    assert.deepEqual(report.degraded, ['listing']);
    assert.equal(report.checks.listing?.ok, true);
    assert.match(report.checks.listing?.detail ?? '', /does not end/);
  });
});
