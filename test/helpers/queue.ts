import { Queue } from 'bullmq';
import { FORWARD_QUEUE } from '../../src/store/keys.js';
import { REDIS_URL } from './redis.js';
import { Redis } from 'ioredis';
import { waitFor } from './wait.js';
import { createRedis, type RedisConnection } from '../../src/infra/redis.js';
import { isClusterUrl } from '../../src/infra/redis-cluster.js';

/** A connection for inspecting a deployment's Redis; a redis+cluster:// URL gets a cluster client. */
export function openRedis(redisUrl = REDIS_URL, maxRetriesPerRequest: number | null = null): RedisConnection {
  if (isClusterUrl(redisUrl)) {
    const cluster = createRedis({ url: redisUrl, name: 'c42x-test', role: maxRetriesPerRequest === null ? 'worker' : 'command' });
    cluster.on('error', () => undefined);
    return cluster;
  }
  return new Redis(redisUrl, { maxRetriesPerRequest, protocol: 2 });
}

/** Opens the forward queue of a deployment for inspection; close it when done. */
export async function withForwardQueue<T>(prefix: string, body: (queue: Queue) => Promise<T>, redisUrl = REDIS_URL): Promise<T> {
  const connection = openRedis(redisUrl);
  const queue = new Queue(FORWARD_QUEUE, { connection, prefix });
  try {
    return await body(queue);
  } finally {
    await queue.close();
    connection.disconnect();
  }
}

/** Waits until nothing is waiting, active or delayed in the forward queue and `extra` holds. */
export async function waitForDrain(prefix: string, extra: () => boolean = () => true, timeoutMs = 60_000, redisUrl = REDIS_URL): Promise<void> {
  await withForwardQueue(
    prefix,
    (queue) =>
      waitFor(
        async () => {
          if (!extra()) return false;
          const c = await queue.getJobCounts('waiting', 'active', 'delayed', 'prioritized');
          return (c.waiting ?? 0) + (c.active ?? 0) + (c.delayed ?? 0) + (c.prioritized ?? 0) === 0;
        },
        { timeoutMs, intervalMs: 50, what: 'a drained forward queue' },
      ),
    redisUrl,
  );
}

export async function failedJobs(prefix: string, redisUrl = REDIS_URL): Promise<Array<{ id: string; reason: string }>> {
  return withForwardQueue(prefix, async (queue) => (await queue.getFailed()).map((j) => ({ id: String(j.id), reason: j.failedReason })), redisUrl);
}
