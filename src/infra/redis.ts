import { Cluster, Redis, type ClusterOptions, type RedisOptions } from 'ioredis';
import { clusterNodes, isClusterUrl, CLUSTER_URL } from './redis-cluster.js';
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
  /** Password for a URL without one (REDIS_PASSWORD); a password in the URL wins. */
  password?: string | null;
}

/** Sentinel form: redis+sentinel://[:password@]host1:26379,host2:26379/<master name>[/db][?sentinelPassword=...] */
const SENTINEL_URL = /^(rediss?)\+sentinel:\/\/(?:([^:@/]*)(?::([^@/]*))?@)?([^/?#]+)\/([^/?#]+)(?:\/(\d+))?\/?(?:\?([^#]*))?$/;

/**
 * ioredis options for the URL forms the daemon accepts:
 * - `redis://[:password@]host:port[/db]` and `rediss://...` (TLS), read by ioredis itself;
 * - `redis+sentinel://[:password@]host1:26379,host2:26379/<master>[/db][?sentinelPassword=...]`
 *   (`rediss+sentinel://` for TLS to the master and replicas): ioredis asks the sentinels for the master.
 * Returns undefined for the plain forms (pass the URL to ioredis).
 */
export function sentinelOptions(url: string): RedisOptions | undefined {
  const m = SENTINEL_URL.exec(url);
  if (!m) return undefined;
  const [, scheme, username, password, hosts, name, db, query] = m;
  const sentinels = (hosts ?? '').split(',').map((hp) => {
    const [host, port] = hp.split(':');
    return { host: host ?? '', port: Number(port || 26379) };
  });
  const params = new URLSearchParams(query ?? '');
  const options: RedisOptions = { sentinels, name: decodeURIComponent(name ?? '') };
  if (username) options.username = decodeURIComponent(username);
  if (password) options.password = decodeURIComponent(password);
  if (db) options.db = Number(db);
  const sentinelPassword = params.get('sentinelPassword');
  if (sentinelPassword) options.sentinelPassword = sentinelPassword;
  if (scheme === 'rediss') options.tls = {};
  return options;
}

/** A connection to one server (plain, Sentinel) or to a Redis Cluster: both speak the same command API. */
export type RedisConnection = Redis | Cluster;

/** The URL is one of the accepted forms (see sentinelOptions and clusterNodes). */
export function isRedisUrl(url: string): boolean {
  if (SENTINEL_URL.test(url) || isClusterUrl(url)) return true;
  try {
    const u = new URL(url);
    return u.protocol === 'redis:' || u.protocol === 'rediss:';
  } catch {
    return false;
  }
}

/**
 * One place that knows how the daemon talks to Redis. Whoever creates a connection closes it:
 * BullMQ never closes a connection it was handed.
 */
export function createRedis(opts: RedisConnectionOptions): RedisConnection {
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
  if (opts.password) options.password = opts.password;
  const cluster = clusterNodes(opts.url);
  if (cluster) return new Cluster(cluster.nodes, clusterOptions({ ...options, ...cluster.redisOptions }, role));
  const sentinel = sentinelOptions(opts.url);
  if (sentinel) return new Redis({ ...options, ...sentinel, ...(sentinel.password ? {} : opts.password ? { password: opts.password } : {}) });
  return new Redis(opts.url, options);
}

/**
 * Cluster options: the per-node options above, and a client that keeps retrying while a master is down.
 * With no replica its slots have no owner until it is back (CLUSTERDOWN, refused connections): the
 * `worker` role waits that out like a single server's restart, the `command` role gives up after a few tries.
 */
function clusterOptions(redisOptions: RedisOptions, role: 'worker' | 'command'): ClusterOptions {
  const { maxRetriesPerRequest, retryStrategy, ...perNode } = redisOptions;
  return {
    redisOptions: { ...perNode, maxRetriesPerRequest },
    enableReadyCheck: true,
    clusterRetryStrategy: retryStrategy ?? (() => 1_000),
    // A command to a slot with no owner is retried this often (retryDelayOnClusterDown apart) before failing.
    maxRedirections: role === 'worker' ? 1_000 : 16,
    retryDelayOnClusterDown: 200,
    retryDelayOnTryAgain: 200,
    retryDelayOnFailover: 200,
    slotsRefreshTimeout: 2_000,
    // Managed services announce internal addresses behind TLS names; keep the host the URL named.
    ...(perNode.tls ? { dnsLookup: (address: string, callback: (err: Error | null, address: string) => void) => callback(null, address) } : {}),
  };
}

/** Closes a connection politely, falling back to a hard disconnect when Redis is unreachable. */
export async function closeRedis(redis: RedisConnection): Promise<void> {
  if (redis.status === 'end') return;
  try {
    await withTimeout(redis.quit(), 1_000, 'quit timeout');
  } catch {
    redis.disconnect();
  }
}

/** Replaces the password of a redis:// URL so it can be shown. */
export function maskRedisUrl(url: string): string {
  if (SENTINEL_URL.test(url) || CLUSTER_URL.test(url)) return url.replace(/^([^:]+:\/\/[^:@/]*:)[^@/]*@/, '$1***@').replace(/(sentinelPassword=)[^&#]*/, '$1***');
  try {
    const u = new URL(url);
    if (u.password) u.password = '***';
    return u.toString();
  } catch {
    return '[unparseable redis url]';
  }
}
