/**
 * The poll and the state sync are scheduled jobs on a short Redis lease: a replica killed while it holds
 * one is taken over within seconds (not after a 30 s lock and a stalled check), and a Redis that lost the
 * schedules has them back within one interval.
 */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { Redis } from 'ioredis';
import type { Code42RequestRecord } from '../sims/code42/index.js';
import { waitFor } from '../helpers/wait.js';
import { FaultRun, assertExactlyOnce, pause } from './harness.js';

const POLL_MS = 2_000;

/** When each poll began: the first page of each listing read (one per poll). */
function pollStarts(requests: ReadonlyArray<Code42RequestRecord>): number[] {
  const pages = requests.filter((r) => r.endpoint === 'sessions.list').map((r) => ({ at: r.at, page: Number(new URLSearchParams(r.query).get('page_number')) }));
  const first = Math.min(...pages.map((p) => p.page));
  return pages.filter((p) => p.page === first).map((p) => p.at).sort((a, b) => a - b);
}

describe('faults: scheduled runs survive their holder', () => {
  it('two replicas, each SIGKILLed twice 3-10 s after its start, under new sessions and XSOAR faults: every session once, no poll gap past the interval + 5 s', async (t) => {
    // The default lock (30 s): the schedule's lease must not depend on it.
    const run = await FaultRun.start({ name: 'sched-kill', env: { POLL_INTERVAL: '2s', WORKER_LOCK_DURATION: '30s', WORKER_CONCURRENCY: '4' } });
    let feeder: NodeJS.Timeout | undefined;
    try {
      run.xsoar.setFaults({ errorRate: 0.1, lostResponseRate: 0.05, latencyMs: 20 });
      run.addSessions(8);
      await Promise.all([run.startDaemon(0), run.startDaemon(1)]);
      const from = Date.now();
      // Four new sessions a second.
      feeder = setInterval(() => run.addSessions(4), 1_000);
      // Each replica killed twice, 3-10 s after its (re)start.
      for (const [slot, wait] of [[0, 4_000], [1, 2_500], [0, 5_000], [1, 4_500]] as const) {
        await pause(wait);
        await run.stopDaemon(slot, 'SIGKILL');
        await run.startDaemon(slot);
      }
      await pause(5_000);
      clearInterval(feeder);
      feeder = undefined;
      const until = Date.now();
      await run.waitComplete(180_000);
      const report = await run.report();
      const starts = pollStarts(run.code42.requests).filter((at) => at >= from - POLL_MS && at <= until);
      const gaps = starts.slice(1).map((at, i) => at - (starts[i] as number));
      const maxGap = Math.max(...gaps);
      t.diagnostic(FaultRun.summary('schedule-kills', report, { polls: starts.length, maxPollGapMs: maxGap, kills: 4 }));
      assertExactlyOnce(report);
      assert.ok(starts.length >= 5, `polls ran (${starts.length})`);
      assert.ok(maxGap <= POLL_MS + 5_000, `no gap between two polls longer than the interval + 5 s (gaps: ${gaps.join(', ')} ms)`);
    } finally {
      if (feeder) clearInterval(feeder);
      await run.close();
    }
  });

  it('after FLUSHALL both schedules are back within one interval; a state-sync run killed mid-way is taken over within seconds', async (t) => {
    const run = await FaultRun.start({
      name: 'sched-flush',
      env: { POLL_INTERVAL: '2s', STATE_SYNC: 'both', STATE_SYNC_INTERVAL: '3s', WORKER_LOCK_DURATION: '30s', FIRST_FETCH: '1h' },
    });
    try {
      run.addSessions(10);
      await run.startDaemon(0);
      await run.waitComplete(60_000);
      await waitFor(() => run.xsoar.closedSearchTimes.length >= 1, { timeoutMs: 15_000, what: 'a first state-sync run' });

      const redis = new Redis(run.redis.url, { maxRetriesPerRequest: 3 });
      let flushedAt: number;
      try {
        await redis.flushall();
        flushedAt = Date.now();
      } finally {
        redis.disconnect();
      }
      const nextPoll = await waitFor(() => pollStarts(run.code42.requests).find((at) => at > flushedAt), { timeoutMs: 15_000, what: 'a poll after the flush' });
      const nextSync = await waitFor(() => run.xsoar.closedSearchTimes.find((at) => at > flushedAt), { timeoutMs: 15_000, what: 'a state sync after the flush' });
      t.diagnostic(`after FLUSHALL: poll after ${nextPoll - flushedAt} ms, state sync after ${nextSync - flushedAt} ms`);
      assert.ok(nextPoll - flushedAt <= POLL_MS + 1_000, `poll back within one interval (${nextPoll - flushedAt} ms)`);
      assert.ok(nextSync - flushedAt <= 3_000 + 1_000, `state sync back within one interval (${nextSync - flushedAt} ms)`);

      // The state sync is held in the middle of its run (its XSOAR search answered only later); a second
      // replica runs beside it; the holder dies.
      const hold = run.xsoar.holdClosedSearches(1);
      await hold.whenHeld(1, 20_000);
      await run.startDaemon(1);
      await pause(1_000);
      await run.stopDaemon(0, 'SIGKILL');
      const killedAt = Date.now();
      hold.release();
      const takeover = await waitFor(() => run.xsoar.closedSearchTimes.find((at) => at > killedAt), { timeoutMs: 30_000, what: 'the state sync taken over' });
      t.diagnostic(`state-sync run taken over ${takeover - killedAt} ms after its holder was killed`);
      assert.ok(takeover - killedAt <= 7_000, `taken over within a few seconds (${takeover - killedAt} ms; the lease is 5 s)`);
    } finally {
      await run.close();
    }
  });
});
