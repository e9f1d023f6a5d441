import type { RedisConnection } from '../infra/redis.js';
import type { StateKeys } from '../store/keys.js';

// Moves the checkpoint forward only: a slow poll that finishes after a newer one must not rewind it.
const ADVANCE_CHECKPOINT = `
local cur = tonumber(redis.call('GET', KEYS[1]) or '-1')
local new = tonumber(ARGV[1])
if new > cur then redis.call('SET', KEYS[1], ARGV[1]) return 1 end
return 0`;

// The same, only while the state marker still holds what it held when the poll began: a poll in flight
// while Redis lost its data must not write a fresh checkpoint over the loss (the window is re-read).
const ADVANCE_CHECKPOINT_IF_MARKER = `
local marker = redis.call('GET', KEYS[2])
if ARGV[2] ~= '' and (marker or '') ~= ARGV[2] then return -1 end
local cur = tonumber(redis.call('GET', KEYS[1]) or '-1')
local new = tonumber(ARGV[1])
if new > cur then redis.call('SET', KEYS[1], ARGV[1]) return 1 end
return 0`;

// Clears the re-read request only if it is still the one this poll served (a newer loss keeps its own).
const CLEAR_REREAD = `
if redis.call('HGET', KEYS[1], 'reread') == ARGV[1] then redis.call('HDEL', KEYS[1], 'reread') return 1 end
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
  /** The deep sweep's own listing for its cycle: `on_or_after` and `before` (begin time), fixed while it runs. */
  from?: number;
  before?: number;
  /** A whole-window read at once (first start, Redis lost its data): paced by the request budget, not the interval. */
  rush?: boolean;
  /** The re-read request (its value) this rush serves. */
  serves?: string;
}

/** The sweeps' durable position (one Redis hash, written after every page). */
export interface SweepPosition {
  /**
   * Code42 time minus FIRST_FETCH at the very first poll: sessions that began before it and were
   * already visible then are not forwarded (0: no such limit, after Redis lost its data).
   */
  origin: number | null;
  /** `on_or_after` of the listing the recent read and the recent sweep use (moves every SWEEP_INTERVAL). */
  listingFrom: number | null;
  /** Code42 time when `listingFrom` last moved. */
  listingAt: number | null;
  /**
   * The first start's read of the whole window is running: sessions it finds that began before `origin`
   * were visible at the very first start, and are recorded as imported, not forwarded.
   */
  importing: boolean;
  /** The whole window has been read with the count index kept: counts can be compared. */
  countsArmed: boolean;
  /** The last poll compared counts (armed, and its pages carried totalCount): the sweeps run at their slower cadence. */
  countsLive: boolean;
  /** Code42 time of the last count probe, per family. */
  probedAt: Record<string, number>;
  tiers: Record<string, SweepCursor>;
}

/**
 * Asks the poller to re-read the whole window at its next poll, every session in the filter enqueued
 * again whether seen or not (the ledger and the search in XSOAR keep that from duplicating): Redis lost
 * its data, so what was queued is gone. Written by the state marker when it notices the loss.
 */
export async function requestWindowReread(redis: RedisConnection, keys: StateKeys, at: number): Promise<void> {
  await redis.hset(keys.sweep, 'reread', String(Math.floor(at)));
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

  /** The state marker's value now ('' when absent). */
  async markerValue(): Promise<string> {
    return (await this.redis.get(this.keys.marker)) ?? '';
  }

  /**
   * Advances the checkpoint only if the state marker still holds `marker`; 'lost' when it does not
   * (Redis lost its data while the poll ran).
   */
  async advanceCheckpointIfMarker(epochMs: number, marker: string): Promise<'moved' | 'kept' | 'lost'> {
    const r = Number(await this.redis.eval(ADVANCE_CHECKPOINT_IF_MARKER, 2, this.keys.checkpoint, this.keys.marker, String(Math.floor(epochMs)), marker));
    return r === 1 ? 'moved' : r === 0 ? 'kept' : 'lost';
  }

  /** The pending re-read request (its time), if any. */
  async rereadRequest(): Promise<string | null> {
    return this.redis.hget(this.keys.sweep, 'reread');
  }

  async clearReread(value: string): Promise<void> {
    await this.redis.eval(CLEAR_REREAD, 1, this.keys.sweep, value);
  }

  /** Why a listing did not end at the last poll ('' when every listing ended), for readiness on every replica. */
  async recordListingHealth(trouble: { detail: string; since: number } | null): Promise<void> {
    if (trouble) await this.redis.hset(this.keys.lastPoll, { listingTrouble: trouble.detail.slice(0, 500), listingTroubleSince: String(trouble.since) });
    else await this.redis.hdel(this.keys.lastPoll, 'listingTrouble', 'listingTroubleSince');
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
    const probedAt: Record<string, number> = {};
    for (const [field, value] of Object.entries(h)) {
      const probe = /^probed:(.+)$/.exec(field);
      if (probe?.[1] && Number.isFinite(Number(value))) probedAt[probe[1]] = Number(value);
      const m = /^tier:(.+)$/.exec(field);
      if (!m?.[1]) continue;
      try {
        const c = JSON.parse(value) as SweepCursor;
        if (typeof c.start === 'number' && typeof c.page === 'number') {
          tiers[m[1]] = {
            start: c.start,
            page: c.page,
            done: Boolean(c.done),
            lastPages: Number(c.lastPages) || 0,
            ...(typeof c.from === 'number' ? { from: c.from } : {}),
            ...(typeof c.before === 'number' ? { before: c.before } : {}),
            ...(c.rush === true ? { rush: true } : {}),
            ...(typeof c.serves === 'string' ? { serves: c.serves } : {}),
          };
        }
      } catch {
        // A cursor that does not parse starts its cycle again: re-reading is harmless.
      }
    }
    return {
      origin: num(h.origin),
      listingFrom: num(h.listingFrom),
      listingAt: num(h.listingAt),
      importing: h.importing === '1',
      countsArmed: h.countsArmed === '1',
      countsLive: h.countsLive === '1',
      probedAt,
      tiers,
    };
  }

  async saveSweep(position: SweepPosition): Promise<void> {
    const fields: Record<string, string> = {};
    if (position.origin !== null) fields.origin = String(position.origin);
    if (position.listingFrom !== null) fields.listingFrom = String(position.listingFrom);
    if (position.listingAt !== null) fields.listingAt = String(position.listingAt);
    fields.importing = position.importing ? '1' : '0';
    fields.countsArmed = position.countsArmed ? '1' : '0';
    fields.countsLive = position.countsLive ? '1' : '0';
    for (const [family, at] of Object.entries(position.probedAt)) fields[`probed:${family}`] = String(at);
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

  async lastPoll(): Promise<{ at: number; ok: boolean; lastSuccessAt: number | null; error: string; listingTrouble?: { detail: string; since: number } } | null> {
    const h = await this.redis.hgetall(this.keys.lastPoll);
    if (!h.at) return null;
    return {
      at: Number(h.at),
      ok: h.ok === '1',
      lastSuccessAt: h.lastSuccessAt ? Number(h.lastSuccessAt) : null,
      error: h.error ?? '',
      ...(h.listingTrouble ? { listingTrouble: { detail: h.listingTrouble, since: Number(h.listingTroubleSince) || Number(h.at) } } : {}),
    };
  }
}
