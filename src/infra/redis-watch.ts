import { Cluster } from 'ioredis';
import type { RedisConnection } from './redis.js';
import type { Logger } from './logger.js';
import { withTimeout } from './timeout.js';
import { maskRedisUrl } from './redis.js';
import { clusterNote } from './redis-cluster.js';

/**
 * Reports a Redis outage once, not once per reconnect attempt: one line naming the (masked) URL and the
 * error, written at the first error after the connection dropped, and one line when it is back.
 */
export function watchRedis(redis: RedisConnection, opts: { url: string; logger: Logger; stopping: () => boolean }): void {
  let down = false;
  let reported = false;
  let fallback: NodeJS.Timeout | undefined;
  const url = maskRedisUrl(opts.url);
  const report = (error: string): void => {
    clearTimeout(fallback);
    if (reported || opts.stopping()) return;
    reported = true;
    opts.logger.warn({ redisUrl: url, error }, `Redis is unreachable at ${url} (${error}); waiting for it (nothing is lost, work resumes when it is back)`);
  };
  if (redis instanceof Cluster) {
    watchClusterNodes(redis, { url, logger: opts.logger, stopping: opts.stopping });
    return;
  }
  redis.on('close', () => {
    if (down || opts.stopping()) return;
    down = true;
    reported = false;
    // The error that explains the drop usually follows the close; report without one after a second.
    fallback = setTimeout(() => report('connection closed'), 1_000);
    fallback.unref();
  });
  redis.on('error', (err: Error) => {
    if (down) report(err.message || (err as NodeJS.ErrnoException).code || err.name);
  });
  redis.on('ready', () => {
    if (!down) return;
    down = false;
    clearTimeout(fallback);
    if (reported) opts.logger.info({ redisUrl: url }, 'Redis is reachable again; resuming');
  });
}

/**
 * On a cluster the client stays up while one master is away (its slots have no owner until it is back):
 * one line at the first error of a node, one when that node answers a PING again (checked every second;
 * the client's own node list is re-read and flaps while the node is down, so it cannot tell).
 */
function watchClusterNodes(cluster: Cluster, opts: { url: string; logger: Logger; stopping: () => boolean }): void {
  const down = new Set<string>();
  let timer: NodeJS.Timeout | undefined;
  const check = async (): Promise<void> => {
    for (const address of [...down]) {
      const node = cluster.nodes().find((n) => `${n.options.host}:${n.options.port}` === address);
      const pong = node ? await withTimeout(node.ping(), 500, 'ping timeout').catch(() => undefined) : undefined;
      if (pong !== 'PONG') continue;
      down.delete(address);
      if (!opts.stopping()) opts.logger.info({ redisUrl: opts.url, node: address }, 'Redis is reachable again; resuming');
    }
    timer = down.size > 0 && !opts.stopping() ? setTimeout(() => void check(), 1_000).unref() : undefined;
  };
  cluster.on('node error', (err: Error, address?: string) => {
    const node = address ?? 'a node';
    if (down.has(node) || opts.stopping()) return;
    down.add(node);
    const error = err.message || (err as NodeJS.ErrnoException).code || err.name;
    opts.logger.warn({ redisUrl: opts.url, node, error }, `Redis is unreachable: cluster node ${node} of ${opts.url} (${error}); waiting for it (nothing is lost, work resumes when it is back)`);
    if (!timer) timer = setTimeout(() => void check(), 1_000).unref();
  });
  cluster.on('end', () => clearTimeout(timer));
}

/** BullMQ needs `noeviction`: any other policy can silently delete queued alerts. Waits until Redis answers. */
export async function warnOnEvictionPolicy(redis: RedisConnection, logger: Logger): Promise<void> {
  try {
    const reply = (await redis.config('GET', 'maxmemory-policy')) as unknown as string[];
    const policy = reply[1];
    if (policy && policy !== 'noeviction') {
      logger.warn({ maxmemoryPolicy: policy }, 'Redis maxmemory-policy is not noeviction: Redis may evict queued alerts under memory pressure; set maxmemory-policy noeviction');
    }
  } catch (err) {
    logger.debug({ err }, 'could not read Redis maxmemory-policy (CONFIG GET not allowed?)');
  }
}

/** On a Redis Cluster, says once at start under which hash-tagged prefix every key of the deployment lives. */
export function announceClusterPrefix(prefix: string, url: string, logger: Logger): void {
  const note = clusterNote(prefix, url);
  if (note) logger.info({ prefix }, note);
}
