import { Queue } from 'bullmq';
import type { RedisConnection } from '../infra/redis.js';
import type { Logger } from '../infra/logger.js';
import { LEGACY_SCHEDULE_QUEUES } from '../store/keys.js';

/**
 * Earlier versions ran the poll and the state sync on BullMQ Job Schedulers with a 30 s lock; they are
 * ScheduledJobs now. Their schedulers are removed so that they stop adding jobs nobody takes. (A replica
 * of the earlier version still running in a rolling upgrade re-creates its own; both polls are harmless:
 * the seen-set and the ledger keep every session once.)
 */
export async function removeLegacySchedules(connection: RedisConnection, prefix: string, logger: Logger): Promise<void> {
  for (const { queue: name, scheduler } of Object.values(LEGACY_SCHEDULE_QUEUES)) {
    const queue = new Queue(name, { connection, prefix });
    queue.on('error', () => undefined);
    try {
      if (await queue.removeJobScheduler(scheduler)) logger.info({ queue: name }, 'removed the schedule of an earlier version');
    } catch (err) {
      logger.debug({ err, queue: name }, 'could not look for the schedule of an earlier version');
    } finally {
      await queue.close().catch(() => undefined);
    }
  }
}
