import { Redis, type RedisOptions } from 'ioredis';
import { withTimeout } from './timeout.js';

export interface RedisConnectionOptions {
  url: string;
  /** Names the connection in `CLIENT LIST`, handy when several replicas share one Redis. */
  name: string;
  /**
   * `worker`: waits for Redis forever (BullMQ requires `maxRetriesPerRequest: null` for workers).
   * `command`: fails a command after a few reconnect attempts, for code that must answer quickly (health checks, CLI).
   * @defaultValue 'worker'
   */
  role?: 'worker' | 'command';
}

/**
 * One place that knows how the daemon talks to Redis. Whoever creates a connection closes it:
 * BullMQ never closes a connection it was handed.
 */
export function createRedis(opts: RedisConnectionOptions): Redis {
  const role = opts.role ?? 'worker';
  const options: RedisOptions = {
    connectionName: opts.name,
    maxRetriesPerRequest: role === 'worker' ? null : 2,
    enableReadyCheck: true,
    // Keep RESP2-shaped replies: BullMQ's scripts expect them.
    protocol: 2,
    retryStrategy: (times) => Math.min(200 * 2 ** Math.min(times, 5), 5_000),
    lazyConnect: false,
  };
  return new Redis(opts.url, options);
}

/** Closes a connection politely, falling back to a hard disconnect when Redis is unreachable. */
export async function closeRedis(redis: Redis): Promise<void> {
  if (redis.status === 'end') return;
  try {
    await withTimeout(redis.quit(), 1_000, 'quit timeout');
  } catch {
    redis.disconnect();
  }
}

/** Replaces the password of a redis:// URL so it can be shown. */
export function maskRedisUrl(url: string): string {
  try {
    const u = new URL(url);
    if (u.password) u.password = '***';
    return u.toString();
  } catch {
    return '[unparseable redis url]';
  }
}
