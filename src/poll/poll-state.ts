import type { RedisConnection } from '../infra/redis.js';
import type { StateKeys } from '../store/keys.js';

// Moves the checkpoint forward only: a slow poll that finishes after a newer one must not rewind it.
const ADVANCE_CHECKPOINT = `
local cur = tonumber(redis.call('GET', KEYS[1]) or '-1')
local new = tonumber(ARGV[1])
if new > cur then redis.call('SET', KEYS[1], ARGV[1]) return 1 end
return 0`;

// Forgets sessions that began before the cutoff from the seen-set and the change tracker together.
const PRUNE_SEEN_AND_TRACKED = `
local ids = redis.call('ZRANGEBYSCORE', KEYS[1], '-inf', '(' .. ARGV[1], 'LIMIT', 0, 500)
if #ids > 0 then
  redis.call('ZREM', KEYS[1], unpack(ids))
  redis.call('HDEL', KEYS[2], unpack(ids))
end
return #ids`;

/** Where a sweep of the listing stands: its cycle started at `start` (Code42 time), `page` is next. */
export interface SweepCursor {
  start: number;
  page: number;
  done: boolean;
  /** Pages the last complete cycle read (paces the next one). */
  lastPages: number;
}

/** The sweeps' durable position (one Redis hash, written after every page). */
export interface SweepPosition {
  /** Code42 time minus FIRST_FETCH at the very first poll: nothing older is ever forwarded. */
  origin: number | null;
  /** `on_or_after` of the listing every read uses (moves at the start of a deep cycle only). */
  listingFrom: number | null;
  tiers: Record<string, SweepCursor>;
}

/** The poller's durable position: checkpoint, seen-set and sweep cursors. */
export class PollState {
  constructor(
    private readonly redis: RedisConnection,
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

  /** Forgets sessions (seen-set and tracked snapshots) that began before `cutoff`. */
  async pruneSeenAndTracked(cutoff: number): Promise<number> {
    let total = 0;
    for (;;) {
      const n = Number(await this.redis.eval(PRUNE_SEEN_AND_TRACKED, 2, this.keys.seen, this.keys.tracked, String(Math.floor(cutoff))));
      total += n;
      if (n < 500) return total;
    }
  }

  async loadSweep(): Promise<SweepPosition> {
    const h = await this.redis.hgetall(this.keys.sweep);
    const num = (v: string | undefined): number | null => (v === undefined || v === '' || !Number.isFinite(Number(v)) ? null : Number(v));
    const tiers: Record<string, SweepCursor> = {};
    for (const [field, value] of Object.entries(h)) {
      const m = /^tier:(.+)$/.exec(field);
      if (!m?.[1]) continue;
      try {
        const c = JSON.parse(value) as SweepCursor;
        if (typeof c.start === 'number' && typeof c.page === 'number') tiers[m[1]] = { start: c.start, page: c.page, done: Boolean(c.done), lastPages: Number(c.lastPages) || 0 };
      } catch {
        // A cursor that does not parse starts its cycle again: re-reading is harmless.
      }
    }
    return { origin: num(h.origin), listingFrom: num(h.listingFrom), tiers };
  }

  async saveSweep(position: SweepPosition): Promise<void> {
    const fields: Record<string, string> = {};
    if (position.origin !== null) fields.origin = String(position.origin);
    if (position.listingFrom !== null) fields.listingFrom = String(position.listingFrom);
    for (const [name, c] of Object.entries(position.tiers)) fields[`tier:${name}`] = JSON.stringify(c);
    await this.redis.hset(this.keys.sweep, fields);
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
