import type { RedisOptions } from 'ioredis';

/** Cluster form: redis+cluster://[user:password@]host1:7000,host2:7001[,...][/] (rediss+cluster:// for TLS). */
export const CLUSTER_URL = /^(rediss?)\+cluster:\/\/(?:([^:@/]*)(?::([^@/]*))?@)?([^/?#@]+)\/?$/;

export interface ClusterNodes {
  /** The seed nodes; the client learns the others (and who owns which slot) from them. */
  nodes: Array<{ host: string; port: number }>;
  /** Per-node options the URL sets (credentials, TLS). */
  redisOptions: RedisOptions;
}

export function isClusterUrl(url: string): boolean {
  return CLUSTER_URL.test(url);
}

/** The seed nodes and per-node options of a cluster URL; undefined for any other form. */
export function clusterNodes(url: string): ClusterNodes | undefined {
  const m = CLUSTER_URL.exec(url);
  if (!m) return undefined;
  const [, scheme, username, password, hosts] = m;
  const nodes = (hosts ?? '').split(',').filter(Boolean).map((hp) => {
    const [host, port] = hp.split(':');
    return { host: host ?? '', port: Number(port || 6379) };
  });
  const redisOptions: RedisOptions = {};
  if (username) redisOptions.username = decodeURIComponent(username);
  if (password) redisOptions.password = decodeURIComponent(password);
  if (scheme === 'rediss') redisOptions.tls = {};
  return { nodes, redisOptions };
}

/**
 * The hash tag of a key prefix, as Redis Cluster reads it: the text between the first `{` and the
 * next `}`, when not empty. Keys sharing it share a slot, which BullMQ's and the daemon's multi-key
 * scripts need.
 */
export function hashTag(prefix: string): string | undefined {
  const open = prefix.indexOf('{');
  if (open < 0) return undefined;
  const close = prefix.indexOf('}', open + 1);
  if (close <= open + 1) return undefined;
  return prefix.slice(open + 1, close);
}

/**
 * The prefix every key of a deployment gets on this Redis: unchanged on a single server or Sentinel,
 * and on a cluster wrapped in braces (`c42x` → `{c42x}`) unless it already carries a hash tag.
 */
export function effectivePrefix(prefix: string, url: string): string {
  if (!isClusterUrl(url) || hashTag(prefix) !== undefined) return prefix;
  return `{${prefix}}`;
}

/** The start log line of cluster mode (undefined on other forms). */
export function clusterNote(prefix: string, url: string): string | undefined {
  if (!isClusterUrl(url)) return undefined;
  return `Redis Cluster: every key of this deployment lives under the hash-tagged prefix ${prefix} (one slot; QUEUE_PREFIX without a {hash tag} is wrapped in braces)`;
}
