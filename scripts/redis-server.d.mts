// Types of redis-server.mjs (plain JS so it runs before anything is built).

export type LogLine = (line: string) => void;

export interface RedisHandle {
  /** redis:// URL of a Redis that answered PING. */
  url: string;
  /** True when ensureRedis started a private redis-server (which `stop()` ends). */
  started: boolean;
  /** Ends the private redis-server and removes its temp dir; does nothing for a Redis that was already running. */
  stop(): Promise<void>;
}

/** Sends PING to host:port; resolves true on +PONG within timeoutMs (default 1000). */
export function ping(host: string, port: number, timeoutMs?: number): Promise<boolean>;

/** Installs redis-server with apt-get when it is missing and the process is root; false when it cannot. */
export function installRedisIfMissing(log?: LogLine): boolean;

/** The Redis at REDIS_URL (or 127.0.0.1:6379) when it answers, else a private redis-server on a free port. */
export function ensureRedis(opts?: { log?: LogLine }): Promise<RedisHandle>;
