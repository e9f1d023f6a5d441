import { Queue, Worker } from 'bullmq';
import type { Redis } from 'ioredis';
import type { Logger } from '../infra/logger.js';
import { POLL_QUEUE } from '../store/keys.js';
import { PollScheduleWatchdog, upsertPollSchedule } from './poll-schedule-watchdog.js';
import type { Poller } from './poller.js';
import { createPollQueue } from '../jobs/queues.js';

export interface PollSchedulerOptions {
  /** Connection for the queue; the worker duplicates it for its blocking reads. */
  connection: Redis;
  prefix: string;
  intervalMs: number;
  poller: Poller;
  logger: Logger;
  /** Lock duration of the poll job (a crashed poller's turn is taken over after about this long). @defaultValue 30000 */
  lockDurationMs?: number;
  /** Told of every error of the poll queue and worker (a full Redis shows up here first: BullMQ's own writes). */
  onError?: (err: Error) => void;
}

/**
 * Runs the poller on a BullMQ Job Scheduler: one scheduler id shared by every replica, a poll queue
 * with global concurrency 1, so a deployment polls exactly once per interval however many replicas run.
 */
export class PollScheduler {
  private queue: Queue | undefined;
  private worker: Worker | undefined;
  private watchdog: PollScheduleWatchdog | undefined;

  constructor(private readonly opts: PollSchedulerOptions) {}

  async start(): Promise<void> {
    const { connection, prefix, intervalMs, poller, logger } = this.opts;
    this.queue = createPollQueue(connection, prefix);
    this.queue.on('error', (err) => {
      this.opts.onError?.(err);
      logger.error({ err }, 'poll queue error');
    });
    await this.queue.setGlobalConcurrency(1);
    await upsertPollSchedule(this.queue, intervalMs);
    this.watchdog = new PollScheduleWatchdog({ queue: this.queue, intervalMs, logger });
    this.watchdog.start();
    this.worker = new Worker(
      POLL_QUEUE,
      async () => {
        const result = await poller.runOnce();
        return result ?? { skipped: true };
      },
      {
        connection,
        prefix,
        concurrency: 1,
        autorun: true,
        lockDuration: this.opts.lockDurationMs ?? 30_000,
        stalledInterval: this.opts.lockDurationMs ?? 30_000,
      },
    );
    // The same failure every interval (say, Code42 down for an hour) is logged once, then again when it changes.
    let lastError = '';
    this.worker.on('failed', (_job, err) => {
      if (err.message === lastError) {
        logger.debug({ err }, 'poll failed again');
        return;
      }
      lastError = err.message;
      logger.error({ err }, 'poll failed; the next poll covers the same window');
    });
    this.worker.on('completed', () => {
      if (lastError) logger.info('polling works again');
      lastError = '';
    });
    this.worker.on('error', (err) => {
      this.opts.onError?.(err);
      logger.error({ err }, 'poll worker error');
    });
  }

  /**
   * Creates the poll schedule again (idempotent: one scheduler id for the deployment). Needed when Redis lost its
   * data while the daemon runs: the schedule lives in Redis, and without it polling would stop for good.
   */
  async ensureSchedule(): Promise<void> {
    if (!this.queue) return;
    await upsertPollSchedule(this.queue, this.opts.intervalMs);
  }

  /**
   * Stops taking poll jobs; a poll in progress finishes first unless `force` (bounded by the caller's
   * deadline). An abandoned poll is harmless: the checkpoint only moves at the end of a poll.
   */
  async stop(force = false): Promise<void> {
    this.watchdog?.stop();
    await this.worker?.close(force);
    await this.queue?.close();
  }
}
