import type { Queue } from 'bullmq';
import type { Logger } from '../infra/logger.js';
import { POLL_SCHEDULER_ID } from '../store/keys.js';

export interface PollScheduleWatchdogOptions {
  queue: Queue;
  intervalMs: number;
  logger: Logger;
  /** Local clock (the one BullMQ uses in this process). @defaultValue Date.now */
  clock?: () => number;
}

/**
 * Keeps the shared poll schedule alive. The schedule lives in Redis, so two things can stop polling for
 * good or for a long time without it:
 * - Redis lost its data (restart without AOF, failover to an empty replica, a flush): the scheduler is gone;
 * - a replica whose clock runs ahead scheduled the next poll in its future, which every other replica sees
 *   as minutes away (BullMQ's delays are local clock times).
 * Every interval (1–30 s) it checks the scheduler and re-creates it, with one log line, when it is missing
 * or its next run lies more than two intervals ahead of this host's clock.
 */
export class PollScheduleWatchdog {
  private timer: NodeJS.Timeout | undefined;
  private checking = false;
  private readonly clock: () => number;

  constructor(private readonly opts: PollScheduleWatchdogOptions) {
    this.clock = opts.clock ?? Date.now;
  }

  start(): void {
    const period = Math.min(30_000, Math.max(1_000, this.opts.intervalMs));
    this.timer = setInterval(() => void this.check(), period);
    this.timer.unref();
  }

  stop(): void {
    if (this.timer) clearInterval(this.timer);
    this.timer = undefined;
  }

  /** One check; resolves with what it did. */
  async check(): Promise<'ok' | 'recreated-missing' | 'recreated-ahead' | 'error'> {
    if (this.checking) return 'ok';
    this.checking = true;
    const { queue, intervalMs, logger } = this.opts;
    try {
      const scheduler = await queue.getJobScheduler(POLL_SCHEDULER_ID);
      if (!scheduler) {
        logger.warn('the poll schedule is missing from Redis (did Redis lose its data?); re-creating it');
        await upsertPollSchedule(queue, intervalMs);
        return 'recreated-missing';
      }
      const aheadMs = (scheduler.next ?? 0) - this.clock();
      if (aheadMs > 2 * intervalMs + 2_000) {
        logger.warn({ aheadMs }, 'the next poll is scheduled too far ahead (by a host whose clock runs ahead?); re-creating the poll schedule');
        await queue.removeJobScheduler(POLL_SCHEDULER_ID);
        await upsertPollSchedule(queue, intervalMs);
        return 'recreated-ahead';
      }
      return 'ok';
    } catch (err) {
      logger.debug({ err }, 'poll schedule check failed; trying again next time');
      return 'error';
    } finally {
      this.checking = false;
    }
  }
}

/** Creates or updates the deployment's one poll schedule (same id on every replica). */
export async function upsertPollSchedule(queue: Queue, intervalMs: number): Promise<void> {
  // The global concurrency lives in Redis too: after a wipe it must be set again, or replicas poll at once.
  await queue.setGlobalConcurrency(1);
  await queue.upsertJobScheduler(POLL_SCHEDULER_ID, { every: intervalMs }, { name: 'poll', data: {} });
}
