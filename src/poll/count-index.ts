/**
 * What the daemon has read of the listing, countable by begin-time slice: one sorted set per count
 * family (session id → begin time), kept in step with every read. Compared with Code42's own counts
 * (see count-search.ts) it tells where an unread change lies.
 *
 * Families:
 * - `all`: every session read (the listing itself: `totalCount` of every recent read, free).
 * - `out`: sessions whose current state is outside the operator's ALERT_STATES (Code42's count with
 *   `state=` each of those states): moves when a session is closed, reopened, taken in progress.
 * - `sev`: sessions whose severity is inside ALERT_SEVERITIES (Code42's count with `severity=` each):
 *   moves when a session escalates into the filter (or drops out of it).
 *
 * Gaps: where Code42 counts differently from the daemon for a lasting reason (an item that fails
 * validation, a state filter that matches any state in the history), the difference found after
 * reading a slice whole is kept per slice, so the slice is not read again until its count moves.
 *
 * Redis per session in the window: about 60 B in `all`, the same again in `out`/`sev` when it belongs.
 */
import type { RedisConnection } from '../infra/redis.js';
import type { StateKeys } from '../store/keys.js';
import type { Slice } from './count-search.js';

export type CountFamily = 'all' | 'out' | 'sev';
export const COUNT_FAMILIES: readonly CountFamily[] = ['all', 'out', 'sev'];

/** Where a read session stands, for the families. */
export interface CountEntry {
  sessionId: string;
  beginTime: number;
  /** Current state outside ALERT_STATES. */
  out: boolean;
  /** Severity inside ALERT_SEVERITIES. */
  sev: boolean;
}

export interface CountKeys {
  all: string;
  out: string;
  sev: string;
  gaps: string;
  /** Sessions visible at the very first start that began before FIRST_FETCH: never forwarded. */
  imported: string;
}

/** Derived from the sweep hash's key, beside it under the deployment's state prefix. */
export function countKeys(keys: StateKeys): CountKeys {
  const base = `${keys.sweep}:counts`;
  return { all: `${base}:all`, out: `${base}:out`, sev: `${base}:sev`, gaps: `${base}:gaps`, imported: `${keys.sweep}:imported` };
}

function gapField(family: CountFamily, slice: Slice): string {
  return `${family}|${slice.from}|${slice.to}`;
}

export class CountIndex {
  readonly keys: CountKeys;
  /** Gaps as last loaded (a poll loads them once; they are few). */
  private gaps: Array<{ family: CountFamily; from: number; to: number; gap: number }> = [];

  constructor(
    private readonly redis: RedisConnection,
    keys: StateKeys,
  ) {
    this.keys = countKeys(keys);
  }

  async record(entries: readonly CountEntry[]): Promise<void> {
    if (entries.length === 0) return;
    const p = this.redis.pipeline();
    const args: Array<string | number> = [];
    for (const e of entries) args.push(e.beginTime, e.sessionId);
    p.zadd(this.keys.all, ...args);
    const outIn = entries.filter((e) => e.out);
    const outNot = entries.filter((e) => !e.out);
    const sevIn = entries.filter((e) => e.sev);
    const sevNot = entries.filter((e) => !e.sev);
    if (outIn.length > 0) p.zadd(this.keys.out, ...outIn.flatMap((e) => [e.beginTime, e.sessionId]));
    if (outNot.length > 0) p.zrem(this.keys.out, ...outNot.map((e) => e.sessionId));
    if (sevIn.length > 0) p.zadd(this.keys.sev, ...sevIn.flatMap((e) => [e.beginTime, e.sessionId]));
    if (sevNot.length > 0) p.zrem(this.keys.sev, ...sevNot.map((e) => e.sessionId));
    const results = (await p.exec()) ?? [];
    for (const [err] of results) if (err) throw err;
  }

  /**
   * The daemon set these sessions' state in Code42 itself (the state sync's change-state): moves them in
   * or out of `out` as Code42's count will, so its own closes do not each cost a count search. Sessions
   * the index does not hold (never read) are left alone.
   */
  async markState(ids: readonly string[], out: boolean): Promise<void> {
    if (ids.length === 0) return;
    const begins = await this.redis.zmscore(this.keys.all, ...ids);
    const held = ids.flatMap((id, i) => (begins[i] === null || begins[i] === undefined ? [] : [{ id, begin: Number(begins[i]) }]));
    if (held.length === 0) return;
    if (out) await this.redis.zadd(this.keys.out, ...held.flatMap((h) => [h.begin, h.id]));
    else await this.redis.zrem(this.keys.out, ...held.map((h) => h.id));
  }

  /** Sessions read in the slice (without gaps). */
  async known(family: CountFamily, slice: Slice): Promise<number> {
    return this.redis.zcount(this.keys[family], String(slice.from), `(${slice.to}`);
  }

  /** Ids of the sessions read in the slice that belong to the family. */
  async members(family: CountFamily, slice: Slice): Promise<string[]> {
    return this.redis.zrangebyscore(this.keys[family], String(slice.from), `(${slice.to}`);
  }

  async loadGaps(): Promise<void> {
    const h = await this.redis.hgetall(this.keys.gaps);
    this.gaps = [];
    for (const [field, value] of Object.entries(h)) {
      const [family, from, to] = field.split('|');
      const gap = Number(value);
      if ((family === 'all' || family === 'out' || family === 'sev') && Number.isFinite(Number(from)) && Number.isFinite(Number(to)) && Number.isFinite(gap)) {
        this.gaps.push({ family, from: Number(from), to: Number(to), gap });
      }
    }
  }

  /** Sum of the gaps kept for slices lying inside `slice`. */
  gapWithin(family: CountFamily, slice: Slice): number {
    let sum = 0;
    for (const g of this.gaps) if (g.family === family && g.from >= slice.from && g.to <= slice.to) sum += g.gap;
    return sum;
  }

  async expected(family: CountFamily, slice: Slice): Promise<number> {
    return (await this.known(family, slice)) + this.gapWithin(family, slice);
  }

  /** After a slice was read whole: what Code42 counts there beyond what was read is its lasting gap. */
  async setGap(family: CountFamily, slice: Slice, code42Count: number): Promise<void> {
    const gap = code42Count - (await this.known(family, slice));
    // Gaps kept for slices inside this one are replaced by this one.
    const inside = this.gaps.filter((g) => g.family === family && g.from >= slice.from && g.to <= slice.to);
    const p = this.redis.pipeline();
    for (const g of inside) p.hdel(this.keys.gaps, gapField(family, g));
    if (gap !== 0) p.hset(this.keys.gaps, gapField(family, slice), String(gap));
    await p.exec();
    this.gaps = this.gaps.filter((g) => !inside.includes(g));
    if (gap !== 0) this.gaps.push({ family, from: slice.from, to: slice.to, gap });
  }

  /** Is the session one of those visible at the very first start that began before FIRST_FETCH? */
  async importedAmong(ids: readonly string[]): Promise<Set<string>> {
    if (ids.length === 0) return new Set();
    const scores = await this.redis.zmscore(this.keys.imported, ...ids);
    return new Set(ids.filter((_, i) => scores[i] !== null));
  }

  async markImported(entries: ReadonlyArray<{ sessionId: string; beginTime: number }>): Promise<void> {
    if (entries.length === 0) return;
    await this.redis.zadd(this.keys.imported, ...entries.flatMap((e) => [e.beginTime, e.sessionId]));
  }

  async forgetImported(): Promise<void> {
    await this.redis.del(this.keys.imported);
  }

  /** Forgets sessions that began before `cutoff` (with the seen-set) and the gaps of slices before it. */
  async prune(cutoff: number): Promise<void> {
    const bound = `(${Math.floor(cutoff)}`;
    const p = this.redis.pipeline();
    for (const key of [this.keys.all, this.keys.out, this.keys.sev, this.keys.imported]) p.zremrangebyscore(key, '-inf', bound);
    for (const g of this.gaps) if (g.to <= cutoff) p.hdel(this.keys.gaps, gapField(g.family, g));
    await p.exec();
    this.gaps = this.gaps.filter((g) => g.to > cutoff);
  }
}
