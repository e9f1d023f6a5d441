import { Queue, Worker } from 'bullmq';
import type { Redis } from 'ioredis';
import type { Logger } from '../infra/logger.js';
import { POLL_QUEUE, POLL_SCHEDULER_ID } from './keys.js';
import type { Poller } from './poller.js';
import { createPollQueue } from './queues.js';

export interface PollSchedulerOptions {
  /** Connection for the queue; the worker duplicates it for its blocking reads. */
  connection: Redis;
  prefix: string;
  intervalMs: number;
  poller: Poller;
  logger: Logger;
}

/**
 * Runs the poller on a BullMQ Job Scheduler: one scheduler id shared by every replica, a poll queue
 * with global concurrency 1, so a deployment polls exactly once per interval however many replicas run.
 */
export class PollScheduler {
  private queue: Queue | undefined;
  private worker: Worker | undefined;

  constructor(private readonly opts: PollSchedulerOptions) {}

  async start(): Promise<void> {
    const { connection, prefix, intervalMs, poller, logger } = this.opts;
    this.queue = createPollQueue(connection, prefix);
    this.queue.on('error', (err) => logger.error({ err }, 'poll queue error'));
    await this.queue.setGlobalConcurrency(1);
    await this.queue.upsertJobScheduler(POLL_SCHEDULER_ID, { every: intervalMs }, { name: 'poll', data: {} });
    this.worker = new Worker(
      POLL_QUEUE,
      async () => {
        const result = await poller.runOnce();
        return result ?? { skipped: true };
      },
      { connection, prefix, concurrency: 1, autorun: true },
    );
    this.worker.on('failed', (_job, err) => logger.error({ err }, 'poll failed; the next poll will cover the same window'));
    this.worker.on('error', (err) => logger.error({ err }, 'poll worker error'));
  }

  /**
   * Stops taking poll jobs; a poll in progress finishes first unless `force` (bounded by the caller's
   * deadline). An abandoned poll is harmless: the checkpoint only moves at the end of a poll.
   */
  async stop(force = false): Promise<void> {
    await this.worker?.close(force);
    await this.queue?.close();
  }
}
