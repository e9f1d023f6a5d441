import type { RedisConnection } from '../infra/redis.js';
import type { StateKeys } from '../store/keys.js';

/** A create under way or accepted: when, and the incident's name (a key any XSOAR can search by). */
export interface CreateMark {
  at: number;
  name: string | null;
}

export interface LedgerEntry {
  /** The incident made for the session, once known. */
  incidentId: string | null;
  /** XSOAR accepted a create (2xx) without saying which incident it made: forwarded, id still unknown. */
  accepted: CreateMark | null;
  /** A create whose outcome is unknown (crash, timeout, lost answer, 5xx). */
  inFlight: CreateMark | null;
  /** The operator asked for the incident to be created again (`replay --force`): no search for an old one. */
  forced: boolean;
}

// Marks the session in flight only while the job's BullMQ lock still holds this process's token.
const CLAIM = `if redis.call('GET', KEYS[1]) ~= ARGV[1] then return 0 end
redis.call('HSET', KEYS[2], ARGV[2], ARGV[3])
return 1`;
const OWNS = `if redis.call('GET', KEYS[1]) == ARGV[1] then return 1 end return 0`;
const RELEASE = `if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('DEL', KEYS[1]) end return 0`;

function parseMark(value: string | null | undefined): CreateMark | null {
  if (value === null || value === undefined) return null;
  // Older marks are a bare epoch-ms number.
  if (/^\d+$/.test(value)) return { at: Number(value), name: null };
  try {
    const parsed = JSON.parse(value) as { at?: unknown; name?: unknown };
    return { at: typeof parsed.at === 'number' ? parsed.at : 0, name: typeof parsed.name === 'string' ? parsed.name : null };
  } catch {
    return { at: 0, name: null };
  }
}

const markValue = (mark: CreateMark): string => JSON.stringify(mark);

/**
 * The exactly-once record: session id → XSOAR incident id, written right after XSOAR accepted the
 * incident and read before every create. Beside it, an "in flight" mark written just before each
 * create: if a create's outcome is unknown (crash, timeout, lost response, 5xx), the mark survives and
 * the next attempt searches XSOAR before creating again. A create XSOAR accepted without an incident id
 * is "accepted": forwarded, never created again, its id looked up by search (IdResolver, many at a time).
 */
export class Ledger {
  private readonly inflightKey: string;
  private readonly acceptedKey: string;
  private readonly forcedKey: string;
  /** Sorted set: accepted sessions whose id is still looked for, scored by acceptance time (see IdResolver). */
  private readonly awaitingKey: string;

  constructor(
    private readonly redis: RedisConnection,
    private readonly keys: StateKeys,
  ) {
    this.inflightKey = `${keys.ledger}:inflight`;
    this.acceptedKey = `${keys.ledger}:accepted`;
    this.forcedKey = `${keys.ledger}:forced`;
    this.awaitingKey = `${keys.ledger}:awaiting-id`;
  }

  /** The incident id, once known. */
  async incidentFor(sessionId: string): Promise<string | null> {
    return this.redis.hget(this.keys.ledger, sessionId);
  }

  /** True when the session was forwarded: its incident is known, or XSOAR accepted it without an id. */
  async isForwarded(sessionId: string): Promise<boolean> {
    const [id, accepted] = await Promise.all([this.redis.hexists(this.keys.ledger, sessionId), this.redis.hexists(this.acceptedKey, sessionId)]);
    return id === 1 || accepted === 1;
  }

  /** Everything the ledger knows about the session, in one round trip. */
  async lookup(sessionId: string): Promise<LedgerEntry> {
    const replies =
      (await this.redis
        .pipeline()
        .hget(this.keys.ledger, sessionId)
        .hget(this.acceptedKey, sessionId)
        .hget(this.inflightKey, sessionId)
        .hexists(this.forcedKey, sessionId)
        .exec()) ?? [];
    for (const [err] of replies) if (err) throw err;
    const value = (i: number): string | null => (replies[i]?.[1] as string | null | undefined) ?? null;
    return { incidentId: value(0), accepted: parseMark(value(1)), inFlight: parseMark(value(2)), forced: replies[3]?.[1] === 1 };
  }

  /** Records the incident and clears the other marks in one step. */
  async record(sessionId: string, incidentId: string): Promise<void> {
    await this.redis
      .multi()
      .hset(this.keys.ledger, sessionId, incidentId)
      .hdel(this.inflightKey, sessionId)
      .hdel(this.acceptedKey, sessionId)
      .hdel(this.forcedKey, sessionId)
      .zrem(this.awaitingKey, sessionId)
      .exec();
  }

  /**
   * XSOAR answered 2xx without an incident id: the session is forwarded; its id is still to be found, and it joins
   * the sessions whose id is looked for.
   */
  async markAccepted(sessionId: string, mark: CreateMark): Promise<void> {
    await this.redis
      .multi()
      .hset(this.acceptedKey, sessionId, markValue(mark))
      .zadd(this.awaitingKey, mark.at, sessionId)
      .hdel(this.inflightKey, sessionId)
      .exec();
  }

  /** Puts an accepted session (back) among those whose id is looked for, unless it is there already. */
  async awaitId(sessionId: string, mark: CreateMark): Promise<void> {
    await this.redis.zadd(this.awaitingKey, 'NX', String(mark.at), sessionId);
  }

  /** Stops looking for the session's id (XSOAR stored nothing: it is in the failed set). */
  async stopAwaitingId(sessionId: string): Promise<void> {
    await this.redis.zrem(this.awaitingKey, sessionId);
  }

  /**
   * Up to `limit` accepted sessions whose id is looked for, longest waiting first, with their acceptance marks.
   * An entry whose accepted mark is gone (recorded or forgotten meanwhile) is dropped from the set.
   */
  async awaitingIds(limit: number): Promise<Array<{ sessionId: string; accepted: CreateMark }>> {
    const ids = await this.redis.zrange(this.awaitingKey, '0', String(Math.max(0, limit - 1)));
    if (ids.length === 0) return [];
    const marks = await this.redis.hmget(this.acceptedKey, ...ids);
    const out: Array<{ sessionId: string; accepted: CreateMark }> = [];
    const stale: string[] = [];
    ids.forEach((sessionId, i) => {
      const accepted = parseMark(marks[i]);
      if (accepted) out.push({ sessionId, accepted });
      else stale.push(sessionId);
    });
    if (stale.length > 0) await this.redis.zrem(this.awaitingKey, ...stale);
    return out;
  }

  /** Sessions whose id is still looked for. */
  async awaitingIdCount(): Promise<number> {
    return this.redis.zcard(this.awaitingKey);
  }

  /** Takes the turn to look ids up (one process of the deployment at a time) for at most `ttlMs`. */
  async claimIdLookup(token: string, ttlMs: number): Promise<boolean> {
    return (await this.redis.set(`${this.awaitingKey}:turn`, token, 'PX', Math.max(1, Math.ceil(ttlMs)), 'NX')) === 'OK';
  }

  async releaseIdLookup(token: string): Promise<void> {
    await this.redis.eval(RELEASE, 1, `${this.awaitingKey}:turn`, token);
  }

  /** Sessions forwarded whose incident id is not known yet. */
  async acceptedCount(): Promise<number> {
    return this.redis.hlen(this.acceptedKey);
  }

  /**
   * Forgets the session's incident so it is created again (`replay --force`, for incidents lost on the XSOAR
   * side): the next create does not look for the old one, even while Redis's records are in doubt.
   */
  async forget(sessionId: string): Promise<void> {
    await this.redis
      .multi()
      .hdel(this.keys.ledger, sessionId)
      .hdel(this.acceptedKey, sessionId)
      .zrem(this.awaitingKey, sessionId)
      .hset(this.forcedKey, sessionId, '1')
      .exec();
  }

  async markInFlight(sessionId: string, mark: CreateMark): Promise<void> {
    await this.redis.hset(this.inflightKey, sessionId, markValue(mark));
  }

  /**
   * Claims the create for the holder of a job lock: marks the session in flight only if `lockKey` still holds
   * `token`, atomically. False: another process owns the job now and this one must not create.
   */
  async claim(sessionId: string, lockKey: string, token: string, mark: CreateMark): Promise<boolean> {
    const ok = await this.redis.eval(CLAIM, 2, lockKey, this.inflightKey, token, sessionId, markValue(mark));
    return ok === 1;
  }

  /** True while `lockKey` still holds `token`. */
  async owns(lockKey: string, token: string): Promise<boolean> {
    return (await this.redis.eval(OWNS, 1, lockKey, token)) === 1;
  }

  /** The create definitely did not happen (refused, rate limited, never connected). */
  async clearInFlight(sessionId: string): Promise<void> {
    await this.redis.hdel(this.inflightKey, sessionId);
  }
}
