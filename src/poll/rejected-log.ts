import { createHash } from 'node:crypto';
import type { RedisConnection } from '../infra/redis.js';
import type { StateKeys } from '../store/keys.js';

export interface RejectedRecord {
  /** Stream entry id (also gives the time). */
  id: string;
  /** Session id when the item had a readable one. */
  sessionId: string | null;
  reason: string;
  /** When it was first rejected (epoch ms). */
  at: number;
  /** The item as received, truncated to a few KB. */
  raw: string;
}

const RAW_LIMIT = 4096;
const STREAM_MAXLEN = 10_000;

/**
 * Input from Code42 that could not be accepted (fails validation). Nothing is dropped silently: each
 * bad item is kept here with its reason, once, for `failed list` to show.
 */
export class RejectedLog {
  constructor(
    private readonly redis: RedisConnection,
    private readonly keys: StateKeys,
  ) {}

  /** Records the item unless the same item was recorded before; returns true when it was new. */
  async record(item: { sessionId: string | null; reason: string; raw: unknown; at: number }): Promise<boolean> {
    const rawText = safeStringify(item.raw);
    // Without an id the item is known by its bytes and what was wrong with it (page-level records have no item at all).
    const dedupKey = item.sessionId
      ? `session:${item.sessionId}`
      : `hash:${createHash('sha256').update(rawText).update('\n').update(item.reason).digest('hex')}`;
    const added = await this.redis.zadd(this.keys.rejectedIds, 'NX', item.at, dedupKey);
    if (added === 0) return false;
    await this.redis.xadd(
      this.keys.rejected,
      'MAXLEN',
      '~',
      STREAM_MAXLEN,
      '*',
      'sessionId',
      item.sessionId ?? '',
      'reason',
      item.reason,
      'at',
      String(item.at),
      'raw',
      rawText.length > RAW_LIMIT ? `${rawText.slice(0, RAW_LIMIT)}…` : rawText,
    );
    return true;
  }

  async list(limit = 1000): Promise<RejectedRecord[]> {
    const entries = await this.redis.xrevrange(this.keys.rejected, '+', '-', 'COUNT', limit);
    return entries.map(([id, fields]) => {
      const f: Record<string, string> = {};
      for (let i = 0; i + 1 < fields.length; i += 2) f[fields[i] as string] = fields[i + 1] as string;
      return { id, sessionId: f.sessionId || null, reason: f.reason ?? '', at: Number(f.at ?? 0), raw: f.raw ?? '' };
    });
  }

  /** Forgets dedup entries older than `cutoff` (the records themselves stay, capped by length). */
  async pruneIds(cutoff: number): Promise<void> {
    await this.redis.zremrangebyscore(this.keys.rejectedIds, '-inf', `(${Math.floor(cutoff)}`);
  }
}

function safeStringify(value: unknown): string {
  try {
    return JSON.stringify(value) ?? String(value);
  } catch {
    return String(value);
  }
}
