import assert from 'node:assert/strict';
import { after, describe, it } from 'node:test';
import { POLL_SCHEDULER_ID } from '../../src/store/keys.js';
import { PollScheduleWatchdog, upsertPollSchedule } from '../../src/poll/poll-schedule-watchdog.js';
import { createPollQueue } from '../../src/jobs/queues.js';
import { silentLogger } from '../helpers/logs.js';
import { deletePrefix, testRedis, uniquePrefix } from '../helpers/redis.js';

describe('poll schedule watchdog', () => {
  const redis = testRedis();
  after(() => redis.disconnect());

  it('re-creates a schedule Redis lost, and one a fast clock pushed minutes ahead; leaves a good one alone', async () => {
    const prefix = uniquePrefix('watchdog');
    const queue = createPollQueue(testRedis(), prefix);
    try {
      await upsertPollSchedule(queue, 1_000);
      const watchdog = new PollScheduleWatchdog({ queue, intervalMs: 1_000, logger: silentLogger() });
      assert.equal(await watchdog.check(), 'ok');

      await queue.removeJobScheduler(POLL_SCHEDULER_ID); // what a flushed Redis looks like
      assert.equal(await watchdog.check(), 'recreated-missing');
      assert.ok(await queue.getJobScheduler(POLL_SCHEDULER_ID));

      // This host's clock two minutes behind the one that scheduled the next poll.
      const behind = new PollScheduleWatchdog({ queue, intervalMs: 1_000, logger: silentLogger(), clock: () => Date.now() - 120_000 });
      assert.equal(await behind.check(), 'recreated-ahead');
      const next = (await queue.getJobScheduler(POLL_SCHEDULER_ID))?.next ?? 0;
      assert.ok(next - Date.now() < 5_000, `next poll ${next - Date.now()} ms away`);
    } finally {
      const connection = (queue.opts as { connection: { disconnect(): void } }).connection;
      await queue.close();
      connection.disconnect();
      await deletePrefix(redis, prefix);
    }
  });
});
