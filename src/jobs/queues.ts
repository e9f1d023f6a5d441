import { Queue, type JobsOptions } from 'bullmq';
import type { Redis } from 'ioredis';
import type { Config } from '../config/load-config.js';
import { FORWARD_QUEUE, POLL_QUEUE } from '../store/keys.js';

export interface ForwardJobPolicy {
  attempts: number;
  /** Delay before the second attempt (ms); doubles with each further attempt. */
  backoffMs: number;
  /** How long completed jobs are kept (ms). */
  keepCompletedMs: number;
}

/**
 * Options of every forward job: retried with exponential backoff and jitter, completed jobs kept for
 * a bounded time and count, failed jobs kept until an operator retries or removes them.
 */
export function forwardJobOptions(policy: ForwardJobPolicy): JobsOptions {
  return {
    attempts: policy.attempts,
    backoff: { type: 'exponential', delay: policy.backoffMs, jitter: 0.5 },
    removeOnComplete: { age: Math.max(1, Math.floor(policy.keepCompletedMs / 1000)), count: 100_000 },
    removeOnFail: false,
  };
}

/** The job policy the configuration asks for (WORKER_ATTEMPTS, WORKER_BACKOFF, KEEP_COMPLETED). */
export function forwardJobPolicy(config: Pick<Config, 'worker'>): ForwardJobPolicy {
  return { attempts: config.worker.attempts, backoffMs: config.worker.backoff, keepCompletedMs: config.worker.keepCompleted };
}

export function createForwardQueue(connection: Redis, prefix: string, policy: ForwardJobPolicy): Queue {
  return new Queue(FORWARD_QUEUE, { connection, prefix, defaultJobOptions: forwardJobOptions(policy) });
}

export function createPollQueue(connection: Redis, prefix: string): Queue {
  return new Queue(POLL_QUEUE, {
    connection,
    prefix,
    defaultJobOptions: { removeOnComplete: { count: 50 }, removeOnFail: { count: 200 }, attempts: 1 },
  });
}
