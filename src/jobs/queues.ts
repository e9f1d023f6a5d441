import { Queue } from 'bullmq';
import type { RedisConnection } from '../infra/redis.js';
import type { Config } from '../config/load-config.js';
import { deriveSettings } from '../config/settings.js';
import { FORWARD_QUEUE } from '../store/keys.js';
import { jobOptions, type RetryPolicy } from './runtime.js';

export type ForwardJobPolicy = RetryPolicy;

/** The retry policy the configuration asks for (WORKER_ATTEMPTS, WORKER_BACKOFF, KEEP_COMPLETED). */
export function forwardJobPolicy(config: Config): RetryPolicy {
  return deriveSettings(config).retry;
}

/** The forward queue outside the daemon (CLI, tests); the daemon gets its own from the job runtime. */
export function createForwardQueue(connection: RedisConnection, prefix: string, policy: RetryPolicy): Queue {
  return new Queue(FORWARD_QUEUE, { connection, prefix, defaultJobOptions: jobOptions(policy) });
}
