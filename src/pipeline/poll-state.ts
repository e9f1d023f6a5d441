import type { Redis } from 'ioredis';
import type { StateKeys } from './keys.js';

// Moves the checkpoint forward only: a slow poll that finishes after a newer one must not rewind it.
const ADVANCE_CHECKPOINT = `
local cur = tonumber(redis.call('GET', KEYS[1]) or '-1')
local new = tonumber(ARGV[1])
if new > cur then redis.call('SET', KEYS[1], ARGV[1]) return 1 end
return 0`;

/** The poller's durable position: checkpoint and seen-set. */
export class PollState {
  constructor(
    private readonly redis: Redis,
    private readonly keys: StateKeys,
  ) {}

  async getCheckpoint(): Promise<number | null> {
    const value = await this.redis.get(this.keys.checkpoint);
    if (value === null) return null;
    const n = Number(value);
    return Number.isFinite(n) ? n : null;
  }

  async advanceCheckpoint(epochMs: number): Promise<boolean> {
    const moved = await this.redis.eval(ADVANCE_CHECKPOINT, 1, this.keys.checkpoint, String(Math.floor(epochMs)));
    return moved === 1;
  }

  /** The ids among `ids` that were never enqueued. */
  async unseen(ids: readonly string[]): Promise<string[]> {
    if (ids.length === 0) return [];
    const pipeline = this.redis.pipeline();
    for (const id of ids) pipeline.zscore(this.keys.seen, id);
    const results = (await pipeline.exec()) ?? [];
    return ids.filter((_, i) => {
      const entry = results[i];
      if (!entry) return true;
      if (entry[0]) throw entry[0];
      return entry[1] === null;
    });
  }

  async markSeen(entries: ReadonlyArray<{ sessionId: string; beginTime: number }>): Promise<void> {
    if (entries.length === 0) return;
    const args: Array<string | number> = [];
    for (const e of entries) args.push(e.beginTime, e.sessionId);
    await this.redis.zadd(this.keys.seen, ...args);
  }

  /** Forgets sessions that began before `cutoff`: no later poll can return them again. */
  async pruneSeen(cutoff: number): Promise<number> {
    return this.redis.zremrangebyscore(this.keys.seen, '-inf', `(${Math.floor(cutoff)}`);
  }

  async recordPoll(outcome: { ok: boolean; at: number; error?: string; enqueued?: number }): Promise<void> {
    const fields: Record<string, string> = { at: String(outcome.at), ok: outcome.ok ? '1' : '0' };
    if (outcome.ok) fields.lastSuccessAt = String(outcome.at);
    if (outcome.error) fields.error = outcome.error.slice(0, 500);
    else fields.error = '';
    if (outcome.enqueued !== undefined) fields.enqueued = String(outcome.enqueued);
    await this.redis.hset(this.keys.lastPoll, fields);
  }

  async lastPoll(): Promise<{ at: number; ok: boolean; lastSuccessAt: number | null; error: string } | null> {
    const h = await this.redis.hgetall(this.keys.lastPoll);
    if (!h.at) return null;
    return {
      at: Number(h.at),
      ok: h.ok === '1',
      lastSuccessAt: h.lastSuccessAt ? Number(h.lastSuccessAt) : null,
      error: h.error ?? '',
    };
  }
}
