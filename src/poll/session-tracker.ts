/**
 * Change detection for forwarded sessions, at no extra Code42 cost: every time a poll or sweep reads a
 * session that was already enqueued, it is compared with the snapshot kept in Redis and each difference
 * becomes one change record (see session-change.ts for the contract).
 *
 * Redis per tracked session: one hash field holding a compact JSON snapshot, 245 B for a session with
 * two alerts (MEMORY USAGE), next to its seen-set entry (145 B); bounded by `DEEP_LOOKBACK` (pruned
 * with the seen-set).
 */
import type { RedisConnection } from '../infra/redis.js';
import { currentSeverity, currentState, type Session } from '../code42/schemas.js';
import type { StateKeys } from '../store/keys.js';
import type { SessionChange, SessionChangeKind, SessionChangeSink, SessionSnapshot } from './session-change.js';

/** Stored form: short keys, `q` is the seq of the last change emitted (0 = none since the create). */
interface StoredSnapshot {
  q: number;
  u: number | null;
  v: number;
  t: string;
  a: string[];
  e: number;
}

export function snapshotOf(session: Session): SessionSnapshot {
  const alertIds = (session.triggeredAlerts ?? [])
    .map((a) => a.alertId ?? `rule:${a.ruleId}`)
    .sort();
  const eventCount =
    (session.noRiskEvents ?? 0) + (session.lowEvents ?? 0) + (session.moderateEvents ?? 0) + (session.highEvents ?? 0) + (session.criticalEvents ?? 0);
  return {
    lastUpdated: session.lastUpdated ?? null,
    severity: currentSeverity(session),
    state: currentState(session) ?? '',
    alertIds,
    eventCount,
  };
}

/** What differs between two snapshots; empty when nothing did. */
export function changedKinds(before: SessionSnapshot, after: SessionSnapshot): SessionChangeKind[] {
  const kinds: SessionChangeKind[] = [];
  if (after.severity !== before.severity) kinds.push('severity');
  if (after.state !== before.state) kinds.push('state');
  const known = new Set(before.alertIds);
  if (after.alertIds.some((id) => !known.has(id))) kinds.push('alerts');
  if (after.eventCount !== before.eventCount) kinds.push('events');
  if (after.lastUpdated !== before.lastUpdated || kinds.length > 0) kinds.unshift('updated');
  return kinds;
}

function encode(s: SessionSnapshot, seq: number): string {
  const stored: StoredSnapshot = { q: seq, u: s.lastUpdated, v: s.severity, t: s.state, a: s.alertIds, e: s.eventCount };
  return JSON.stringify(stored);
}

function decode(text: string): { seq: number; snapshot: SessionSnapshot } | null {
  try {
    const s = JSON.parse(text) as StoredSnapshot;
    if (typeof s.q !== 'number' || !Array.isArray(s.a)) return null;
    return { seq: s.q, snapshot: { lastUpdated: s.u ?? null, severity: s.v, state: s.t, alertIds: s.a, eventCount: s.e } };
  } catch {
    return null;
  }
}

/**
 * The default sink: appends to the Redis stream `<prefix>:state:changes`, capped at about `maxLen`
 * entries (the consumer reads it with a consumer group or XREAD; the oldest records go first).
 */
export class RedisStreamChangeSink implements SessionChangeSink {
  constructor(
    readonly redis: RedisConnection,
    readonly key: string,
    readonly maxLen = 10_000,
  ) {}

  static fields(change: SessionChange): string[] {
    return ['sessionId', change.sessionId, 'seq', String(change.seq), 'kinds', change.kinds.join(','), 'detectedAt', String(change.detectedAt), 'change', JSON.stringify(change)];
  }

  async emit(change: SessionChange): Promise<void> {
    await this.redis.xadd(this.key, 'MAXLEN', '~', String(this.maxLen), '*', ...RedisStreamChangeSink.fields(change));
  }
}

// Compare-and-set of a snapshot: only when the stored seq is still the one the change was computed from,
// so two readers of the same session (a crashed poll's lock taken over) emit a change once.
const CAS_CHECK_AND_SET = `
local cur = redis.call('HGET', KEYS[1], ARGV[1])
if not cur then return 0 end
local ok, obj = pcall(cjson.decode, cur)
if not ok or obj['q'] ~= tonumber(ARGV[2]) then return 0 end
redis.call('HSET', KEYS[1], ARGV[1], ARGV[3])`;
const CAS_SNAPSHOT = `${CAS_CHECK_AND_SET}
return 1`;
// The same, with the stream append in one atomic step (the default sink): exactly one record per change.
const CAS_SNAPSHOT_XADD = `${CAS_CHECK_AND_SET}
redis.call('XADD', KEYS[2], 'MAXLEN', '~', ARGV[4], '*', unpack(ARGV, 5))
return 1`;

export interface SessionTrackerOptions {
  redis: RedisConnection;
  keys: StateKeys;
  /** Where change records go. @defaultValue a RedisStreamChangeSink on `keys.changes` */
  sink?: SessionChangeSink;
}

export class SessionTracker {
  readonly sink: SessionChangeSink;

  constructor(private readonly opts: SessionTrackerOptions) {
    this.sink = opts.sink ?? new RedisStreamChangeSink(opts.redis, opts.keys.changes);
  }

  /** Starts tracking sessions just enqueued (keeps an existing snapshot: a re-enqueue after a crash). */
  async track(sessions: readonly Session[]): Promise<void> {
    if (sessions.length === 0) return;
    const pipeline = this.opts.redis.pipeline();
    for (const s of sessions) pipeline.hsetnx(this.opts.keys.tracked, s.sessionId, encode(snapshotOf(s), 0));
    await pipeline.exec();
  }

  /**
   * Compares sessions already enqueued with their snapshots; emits one record per change and stores the
   * new snapshot. Returns the number of records emitted.
   */
  async observe(sessions: readonly Session[], detectedAt: number): Promise<number> {
    if (sessions.length === 0) return 0;
    const { redis, keys } = this.opts;
    const stored = await redis.hmget(keys.tracked, ...sessions.map((s) => s.sessionId));
    let emitted = 0;
    const untracked: Session[] = [];
    for (const [i, session] of sessions.entries()) {
      const text = stored[i];
      const previous = text ? decode(text) : null;
      if (!previous) {
        // Enqueued before change tracking existed (or a snapshot lost): start from what is read now.
        untracked.push(session);
        continue;
      }
      const now = snapshotOf(session);
      const kinds = changedKinds(previous.snapshot, now);
      if (kinds.length === 0) continue;
      const change: SessionChange = { sessionId: session.sessionId, seq: previous.seq + 1, kinds, detectedAt, session, previous: previous.snapshot };
      if (await this.commit(change, now, previous.seq)) emitted += 1;
    }
    if (untracked.length > 0) {
      const pipeline = redis.pipeline();
      for (const s of untracked) pipeline.hset(keys.tracked, s.sessionId, encode(snapshotOf(s), 0));
      await pipeline.exec();
    }
    return emitted;
  }

  private async commit(change: SessionChange, now: SessionSnapshot, previousSeq: number): Promise<boolean> {
    const { redis, keys } = this.opts;
    const next = encode(now, change.seq);
    const sink = this.sink;
    if (sink instanceof RedisStreamChangeSink && sink.redis === redis) {
      const done = await redis.eval(CAS_SNAPSHOT_XADD, 2, keys.tracked, sink.key, change.sessionId, String(previousSeq), next, String(sink.maxLen), ...RedisStreamChangeSink.fields(change));
      return done === 1;
    }
    // Another sink: emit first, then move the snapshot. A crash in between emits the same seq again on
    // the next read, so consumers deduplicate on (sessionId, seq): at least once, never lost.
    await sink.emit(change);
    await redis.eval(CAS_SNAPSHOT, 1, keys.tracked, change.sessionId, String(previousSeq), next);
    return true;
  }
}
