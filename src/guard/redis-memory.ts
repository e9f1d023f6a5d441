import { Cluster } from 'ioredis';
import type { RedisConnection } from '../infra/redis.js';
import { withTimeout } from '../infra/timeout.js';

/** Redis refused a write because it is at `maxmemory` with `noeviction`. */
export function isRedisOomError(err: unknown): boolean {
  let e: unknown = err;
  // BullMQ and got may wrap it; look a few causes deep.
  for (let i = 0; i < 4 && e instanceof Error; i++) {
    if (/^OOM\b|OOM command not allowed/.test(e.message)) return true;
    e = e.cause;
  }
  return false;
}

export interface RedisMemory {
  usedBytes: number;
  /** 0 when Redis has no limit. */
  maxBytes: number;
}

/** Reads `used_memory` and `maxmemory` from `INFO memory` (read-only: allowed at maxmemory). */
export async function readRedisMemory(redis: RedisConnection): Promise<RedisMemory | undefined> {
  // On a cluster INFO answers for one node only: report the fullest master (the one that refuses writes first).
  if (redis instanceof Cluster) {
    const masters = await Promise.all(redis.nodes('master').map((node) => withTimeout(readRedisMemory(node), 1_000, 'INFO timeout').catch(() => undefined)));
    const fill = (m: RedisMemory): number => (m.maxBytes > 0 ? m.usedBytes / m.maxBytes : 0);
    return masters.filter((m): m is RedisMemory => m !== undefined).sort((a, b) => fill(b) - fill(a) || b.usedBytes - a.usedBytes)[0];
  }
  const info = await redis.info('memory');
  const field = (name: string): number | undefined => {
    const m = new RegExp(`^${name}:(\\d+)`, 'm').exec(info);
    return m ? Number(m[1]) : undefined;
  };
  const usedBytes = field('used_memory');
  if (usedBytes === undefined) return undefined;
  return { usedBytes, maxBytes: field('maxmemory') ?? 0 };
}

export interface RedisFullState {
  /** When Redis first refused a write (epoch ms). */
  since: number;
  reason: string;
}

export interface RedisMemoryGuardOptions {
  /** A connection for the write probe and INFO (the state connection). */
  redis: RedisConnection;
  /** Key the write probe sets (with a short expiry). */
  probeKey: string;
  probeIntervalMs: number;
  probeMaxMs: number;
  /** Stop taking jobs in this process (no Redis write: a full Redis would refuse it). */
  pause(): Promise<void>;
  resume(): Promise<void>;
  events?: {
    onFull?(state: RedisFullState, memory: RedisMemory | undefined): void;
    onRecovered?(downMs: number, memory: RedisMemory | undefined): void;
  };
  clock?: () => number;
}

/**
 * A full Redis is a condition of the deployment, not of a session: when a write is refused for memory,
 * this process stops taking jobs (a local pause, since a queue-wide pause is itself a write), probes with a
 * small expiring write after a backoff, and resumes when Redis accepts writes again. The job that met
 * the refusal is handed back without an attempt; if even that write is refused, it stays active until its
 * lock expires and BullMQ's stalled check puts it back once Redis has room.
 */
export class RedisMemoryGuard {
  private full: RedisFullState | undefined;
  private timer: NodeJS.Timeout | undefined;
  private probes = 0;
  private stopped = false;
  private readonly clock: () => number;

  constructor(private readonly opts: RedisMemoryGuardOptions) {
    this.clock = opts.clock ?? Date.now;
  }

  state(): RedisFullState | undefined {
    return this.full ? { ...this.full } : undefined;
  }

  /** A write was refused for memory. True the first time (one log line per episode). */
  async refused(reason: string): Promise<boolean> {
    if (this.full) return false;
    this.full = { since: this.clock(), reason };
    this.probes = 0;
    await this.opts.pause().catch(() => undefined);
    this.schedule(this.opts.probeIntervalMs);
    this.opts.events?.onFull?.({ ...this.full }, await this.memory());
    return true;
  }

  stop(): void {
    this.stopped = true;
    clearTimeout(this.timer);
  }

  async memory(): Promise<RedisMemory | undefined> {
    return readRedisMemory(this.opts.redis).catch(() => undefined);
  }

  private schedule(ms: number): void {
    if (this.stopped) return;
    clearTimeout(this.timer);
    this.timer = setTimeout(() => void this.probe(), ms);
    this.timer.unref();
  }

  private async probe(): Promise<void> {
    if (!this.full || this.stopped) return;
    try {
      await this.opts.redis.set(this.opts.probeKey, String(this.clock()), 'PX', 10_000);
    } catch (err) {
      this.probes += 1;
      if (!isRedisOomError(err)) this.full.reason = (err as Error).message;
      this.schedule(Math.min(this.opts.probeMaxMs, this.opts.probeIntervalMs * 2 ** this.probes));
      return;
    }
    const since = this.full.since;
    this.full = undefined;
    await this.opts.resume().catch(() => undefined);
    this.opts.events?.onRecovered?.(this.clock() - since, await this.memory());
  }
}
