/**
 * The per-session sync record in Redis: the change waiting to be applied, the one being applied,
 * when each direction last synced, and what the daemon itself last wrote on either side (so nothing
 * it wrote comes back as someone else's change). Ledger internals stay untouched: the incident id is
 * read through `Ledger.incidentFor`.
 */
import type { RedisConnection } from '../infra/redis.js';
import { SessionSchema, currentState, type Session } from '../code42/schemas.js';
import type { SessionChange, SessionChangeKind, SessionSnapshot } from '../poll/session-change.js';
import type { SyncKeys } from '../store/keys.js';
import { readStoredJson } from '../store/stored-json.js';

export { syncKeys, type SyncKeys } from '../store/keys.js';

/** An Incydr close kept for later (see SyncState.hold). */
export interface HeldClose {
  state: string;
  user: string;
  at: number;
}

/** Reads a held close back; undefined when absent or unreadable. */
export function parseHeldClose(raw: string | null | undefined): HeldClose | undefined {
  return readStoredJson<HeldClose>(raw, (h) =>
    typeof h.state === 'string' && typeof h.at === 'number' ? { state: h.state, user: String(h.user ?? 'an Incydr user'), at: h.at } : undefined,
  );
}

/**
 * Session changes not written to the incident while TRACK_UPDATES=false (see SyncState.holdUpdate): what the
 * incident last showed (`since`), and the newest session read since, with its change's seq.
 */
export interface HeldUpdate {
  since: Pick<SessionSnapshot, 'severity' | 'alertIds' | 'eventCount'>;
  seq: number;
  kinds: SessionChangeKind[];
  detectedAt: number;
  session: unknown;
}

/** Reads a held update back; undefined when absent or unreadable (then nothing is carried for it). */
export function parseHeldUpdate(raw: string | null | undefined): HeldUpdate | undefined {
  return readStoredJson<HeldUpdate>(raw, (h) => {
    const since = h.since;
    if (!since || typeof since.severity !== 'number' || typeof since.eventCount !== 'number' || !Array.isArray(since.alertIds)) return undefined;
    if (typeof h.seq !== 'number' || typeof h.detectedAt !== 'number' || !Array.isArray(h.kinds)) return undefined;
    return { since, seq: h.seq, kinds: h.kinds, detectedAt: h.detectedAt, session: h.session };
  });
}

/** A change claimed for applying: one or more change records merged (newest session, oldest "previous"). */
export interface ClaimedChange {
  sessionId: string;
  /** Seq of the newest record merged in. */
  seq: number;
  /** Seq of the oldest record merged in. */
  seqFrom: number;
  kinds: SessionChangeKind[];
  detectedAt: number;
  /** When the oldest change merged in reached the sync (this host's clock; UPDATE_INTERVAL gathers from there). */
  firstReceivedAt?: number;
  session: Session;
  previous: SessionSnapshot;
}

/** What `status <sessionId>` shows, and what the sync reads before acting. All optional. */
export interface SessionSyncRecord {
  /** Seq of the last change applied to the incident. */
  appliedSeq?: number;
  /** When the incident was last updated from the session (epoch ms), and what was done. */
  lastToXsoar?: number;
  lastToXsoarWhat?: string;
  /** When Incydr was last updated from XSOAR (epoch ms), and what was done. */
  lastToCode42?: number;
  lastToCode42What?: string;
  /** Severity (XSOAR scale) the daemon last wrote to the incident. */
  wroteSeverity?: number;
  /** Incydr state the daemon last set, and when. Cleared once the session's state moves on from it. */
  wroteCode42State?: string;
  wroteCode42At?: number;
  /**
   * Length of the session's state history right after the daemon's change-state (read before writing,
   * plus one): the state history entry that is the daemon's own. A later entry with the same state (an
   * analyst setting it again) is someone else's.
   */
  wroteCode42Version?: number;
  /** `closed` time of the incident when the daemon closed it. */
  xsoarClosedByDaemon?: string;
  /** When the daemon was about to close the incident (cleared once the close is recorded): a crash in between is recognised by it. */
  xsoarCloseIntentAt?: number;
  /** An Incydr close not carried because STATE_SYNC did not allow it then (JSON: state, user, at). */
  heldIncydrClose?: string;
  /** Changes not written to the incident while TRACK_UPDATES=false (JSON HeldUpdate). */
  heldUpdate?: string;
  /** The last write the other side refused for this session: when, and what (direction, reason, answer). */
  refusedToCode42At?: number;
  refusedToCode42What?: string;
  refusedToXsoarAt?: number;
  refusedToXsoarWhat?: string;
  /** `closed` time of the XSOAR close already carried to Incydr. */
  code42CloseSynced?: string;
  /** War-room note protocol: the seq whose note is about to be sent (and when), the last seq whose note is known sent. */
  noteIntent?: number;
  noteIntentAt?: number;
  noteSent?: number;
  /** Session-note protocol for an XSOAR close: the close time whose note is about to be sent / was sent. */
  code42NoteIntent?: string;
  code42NoteSent?: string;
  /** Code42 calls made by the sync for this session. */
  code42Calls?: number;
  /** The change being applied right now (or interrupted). */
  inflight?: ClaimedChange;
}

const NUMBER_FIELDS = [
  'appliedSeq',
  'lastToXsoar',
  'lastToCode42',
  'wroteSeverity',
  'wroteCode42At',
  'wroteCode42Version',
  'xsoarCloseIntentAt',
  'refusedToCode42At',
  'refusedToXsoarAt',
  'noteIntent',
  'noteIntentAt',
  'noteSent',
  'code42Calls',
] as const;
const STRING_FIELDS = [
  'lastToXsoarWhat',
  'lastToCode42What',
  'wroteCode42State',
  'xsoarClosedByDaemon',
  'code42CloseSynced',
  'code42NoteIntent',
  'code42NoteSent',
  'refusedToCode42What',
  'refusedToXsoarWhat',
  'heldIncydrClose',
  'heldUpdate',
] as const;

/** Fields of the sync record that can be forgotten (see SyncState.clear). */
export type ClearableField = (typeof NUMBER_FIELDS)[number] | (typeof STRING_FIELDS)[number];

/**
 * Merges a change record into the session's pending change, unless it is no newer than what is
 * pending, being applied or applied. Kinds are united; the oldest `previous` is kept.
 * KEYS: pending hash, pending-ids set, session hash. ARGV: sessionId, seq, session, previous, kinds, detectedAt, receivedAt.
 */
const MERGE_PENDING = `
local seq = tonumber(ARGV[2])
local applied = tonumber(redis.call('HGET', KEYS[3], 'appliedSeq') or '-1')
if seq <= applied then return 0 end
local inflight = redis.call('HGET', KEYS[3], 'inflight')
if inflight then
  local s = tonumber(cjson.decode(inflight).seq)
  if seq <= s then return 0 end
end
local cur = tonumber(redis.call('HGET', KEYS[1], 'seq') or '-1')
if seq <= cur then return 0 end
if cur < 0 then
  redis.call('HSET', KEYS[1], 'seqFrom', ARGV[2], 'previous', ARGV[4], 'kinds', ARGV[5], 'firstReceivedAt', ARGV[7])
else
  local kinds = redis.call('HGET', KEYS[1], 'kinds') or ''
  for k in string.gmatch(ARGV[5], '[^,]+') do
    if not string.find(',' .. kinds .. ',', ',' .. k .. ',', 1, true) then
      if kinds == '' then kinds = k else kinds = kinds .. ',' .. k end
    end
  end
  redis.call('HSET', KEYS[1], 'kinds', kinds)
end
redis.call('HSET', KEYS[1], 'seq', ARGV[2], 'session', ARGV[3], 'detectedAt', ARGV[6])
redis.call('SADD', KEYS[2], ARGV[1])
return 1
`;

/**
 * Claims the change to apply, moved to `inflight` in the same step (a change arriving now goes to a fresh
 * pending change). An interrupted change (still `inflight`) is claimed again, but never ahead of a newer
 * one: a pending change is merged into it (newest session and seq, the interrupted one's "previous", kinds
 * united), so a change that keeps failing never holds back what came after it.
 * KEYS: pending hash, pending-ids set, session hash. ARGV: sessionId.
 */
const CLAIM = `
local inflight = redis.call('HGET', KEYS[3], 'inflight')
local pendingExists = redis.call('EXISTS', KEYS[1]) == 1
redis.call('SREM', KEYS[2], ARGV[1])
if not pendingExists then
  if inflight then return inflight end
  return false
end
local h = redis.call('HGETALL', KEYS[1])
local t = {}
for i = 1, #h, 2 do t[h[i]] = h[i + 1] end
if inflight then
  local old = cjson.decode(inflight)
  t.seqFrom = old.seqFrom or old.seq
  t.previous = old.previous
  local kinds = old.kinds or ''
  for k in string.gmatch(t.kinds or '', '[^,]+') do
    if not string.find(',' .. kinds .. ',', ',' .. k .. ',', 1, true) then
      if kinds == '' then kinds = k else kinds = kinds .. ',' .. k end
    end
  end
  t.kinds = kinds
end
local encoded = cjson.encode(t)
redis.call('HSET', KEYS[3], 'inflight', encoded)
redis.call('DEL', KEYS[1])
return encoded
`;

/**
 * A held update back as the pending change (see requeueHeldUpdate). Its seq is the last one applied while
 * TRACK_UPDATES was off, so it bypasses MERGE_PENDING's "newer than applied" test.
 * KEYS: pending hash, pending-ids set, session hash. ARGV: as MERGE_PENDING's.
 */
const REQUEUE_HELD = `
if redis.call('EXISTS', KEYS[1]) == 1 or redis.call('HEXISTS', KEYS[3], 'inflight') == 1 then return 0 end
redis.call('HSET', KEYS[1], 'seq', ARGV[2], 'seqFrom', ARGV[2], 'session', ARGV[3], 'previous', ARGV[4], 'kinds', ARGV[5], 'detectedAt', ARGV[6], 'firstReceivedAt', ARGV[7])
redis.call('SADD', KEYS[2], ARGV[1])
return 1
`;

export class SyncState {
  constructor(
    private readonly redis: RedisConnection,
    readonly keys: SyncKeys,
  ) {}

  /** Stores a change record as (part of) the session's pending change; false when it was not newer. */
  /**
   * `receivedAt` (this host's clock, like the sync record's times) starts an UPDATE_INTERVAL window; the
   * change's own `detectedAt` is Code42's clock, whole seconds behind at worst.
   */
  async mergePending(change: SessionChange, receivedAt = Date.now()): Promise<boolean> {
    return (await this.putPending(MERGE_PENDING, change, receivedAt)) === 1;
  }

  /** Runs a script that writes the session's pending change (MERGE_PENDING, REQUEUE_HELD: same keys and ARGV). */
  private async putPending(script: string, change: Pick<SessionChange, 'sessionId' | 'seq' | 'previous' | 'kinds' | 'detectedAt'> & { session: unknown }, receivedAt: number): Promise<unknown> {
    const { sessionId } = change;
    return this.redis.eval(
      script,
      3,
      this.keys.pending(sessionId),
      this.keys.pendingIds,
      this.keys.session(sessionId),
      sessionId,
      String(change.seq),
      JSON.stringify(change.session),
      JSON.stringify(change.previous),
      change.kinds.join(','),
      String(change.detectedAt),
      String(receivedAt),
    );
  }

  /** The change to apply next (see CLAIM), or null when nothing is waiting. */
  async claim(sessionId: string): Promise<ClaimedChange | null> {
    const encoded = (await this.redis.eval(CLAIM, 3, this.keys.pending(sessionId), this.keys.pendingIds, this.keys.session(sessionId), sessionId)) as string | null;
    return encoded ? decodeClaimed(sessionId, encoded) : null;
  }

  /** The claimed change is applied: forget it and remember its seq. */
  async finish(sessionId: string, seq: number, fields: SessionSyncRecord = {}): Promise<void> {
    await this.redis.multi().hdel(this.keys.session(sessionId), 'inflight').hset(this.keys.session(sessionId), { ...encode(fields), appliedSeq: String(seq) }).exec();
  }

  async set(sessionId: string, fields: SessionSyncRecord): Promise<void> {
    const encoded = encode(fields);
    if (Object.keys(encoded).length > 0) await this.redis.hset(this.keys.session(sessionId), encoded);
  }

  /** Forgets fields of the record (the daemon's own-write record once the other side moved on, an intent once done). */
  async clear(sessionId: string, fields: readonly ClearableField[]): Promise<void> {
    if (fields.length > 0) await this.redis.hdel(this.keys.session(sessionId), ...fields);
  }

  /**
   * Lets the session's record expire `ttlMs` from now (its incident is closed and the session is out
   * of the poller's reach); any later write to the record makes it permanent again (see `keep`).
   */
  async expireAfter(sessionId: string, ttlMs: number): Promise<void> {
    await this.redis.pexpire(this.keys.session(sessionId), Math.max(1, Math.round(ttlMs)));
  }

  /** The record is in use again: no expiry. */
  async keep(sessionId: string): Promise<void> {
    await this.redis.persist(this.keys.session(sessionId));
  }

  /** Keeps an Incydr close that STATE_SYNC does not carry now, to carry once it does. */
  async hold(sessionId: string, close: HeldClose): Promise<void> {
    await this.redis.multi().hset(this.keys.session(sessionId), 'heldIncydrClose', JSON.stringify(close)).sadd(this.keys.heldCloses, sessionId).exec();
  }

  /** The held close is carried, or no longer stands (the session was reopened). */
  async release(sessionId: string): Promise<void> {
    await this.redis.multi().hdel(this.keys.session(sessionId), 'heldIncydrClose').srem(this.keys.heldCloses, sessionId).exec();
  }

  async heldSessionIds(): Promise<string[]> {
    return this.redis.smembers(this.keys.heldCloses);
  }

  /**
   * Keeps what TRACK_UPDATES=false did not write to the incident: the first held change fixes `since` (what
   * the incident shows), later ones only bring the session forward. Carried once TRACK_UPDATES is on.
   */
  async holdUpdate(sessionId: string, change: Omit<HeldUpdate, 'since'>, since: HeldUpdate['since']): Promise<void> {
    const old = await this.heldUpdateOf(sessionId);
    const held: HeldUpdate = { ...change, since: old?.since ?? since, kinds: [...new Set([...(old?.kinds ?? []), ...change.kinds])] };
    await this.redis.multi().hset(this.keys.session(sessionId), 'heldUpdate', JSON.stringify(held)).sadd(this.keys.heldUpdates, sessionId).exec();
  }

  /** The held changes are in the incident now. */
  async releaseUpdate(sessionId: string): Promise<void> {
    await this.redis.multi().hdel(this.keys.session(sessionId), 'heldUpdate').srem(this.keys.heldUpdates, sessionId).exec();
  }

  private async heldUpdateOf(sessionId: string): Promise<HeldUpdate | undefined> {
    return parseHeldUpdate(await this.redis.hget(this.keys.session(sessionId), 'heldUpdate'));
  }

  async heldUpdateIds(): Promise<string[]> {
    return this.redis.smembers(this.keys.heldUpdates);
  }

  /**
   * Makes the held update a pending change again (TRACK_UPDATES is on now), unless a change of the session
   * is already pending or being applied (`busy`): that one carries the held changes with it. `invalid`: the
   * record holds nothing readable.
   */
  async requeueHeldUpdate(sessionId: string, receivedAt: number): Promise<'queued' | 'busy' | 'invalid'> {
    const held = await this.heldUpdateOf(sessionId);
    const session = SessionSchema.safeParse(held?.session);
    if (!held || !session.success) return 'invalid';
    const s = session.data;
    // Nothing of the state is news here (the state sync already dealt with it): the state is the session's own.
    const previous: SessionSnapshot = { ...held.since, lastUpdated: s.lastUpdated ?? null, state: currentState(s) ?? '' };
    const kinds = held.kinds.filter((k) => k !== 'state');
    const queued = await this.putPending(REQUEUE_HELD, { sessionId, seq: held.seq, session: held.session, previous, kinds, detectedAt: held.detectedAt }, receivedAt);
    return queued === 1 ? 'queued' : 'busy';
  }

  async countCode42Calls(sessionId: string, calls: number): Promise<void> {
    if (calls > 0) await this.redis.hincrby(this.keys.session(sessionId), 'code42Calls', calls);
  }

  async get(sessionId: string): Promise<SessionSyncRecord> {
    const raw = await this.redis.hgetall(this.keys.session(sessionId));
    const out: SessionSyncRecord = {};
    for (const f of NUMBER_FIELDS) if (raw[f] !== undefined && Number.isFinite(Number(raw[f]))) out[f] = Number(raw[f]);
    for (const f of STRING_FIELDS) if (raw[f] !== undefined) out[f] = raw[f];
    if (raw.inflight) out.inflight = decodeClaimed(sessionId, raw.inflight);
    return out;
  }

  /** The change waiting for an update job, if any (without claiming it). */
  async pending(sessionId: string): Promise<ClaimedChange | null> {
    const h = await this.redis.hgetall(this.keys.pending(sessionId));
    return Object.keys(h).length === 0 ? null : decodeClaimed(sessionId, JSON.stringify(h));
  }

  async pendingSessionIds(): Promise<string[]> {
    return this.redis.smembers(this.keys.pendingIds);
  }
}

function encode(fields: SessionSyncRecord): Record<string, string> {
  const out: Record<string, string> = {};
  for (const [k, v] of Object.entries(fields)) {
    if (v === undefined || k === 'inflight') continue;
    out[k] = String(v);
  }
  return out;
}

/** Reads a stored change back, checking the session at the boundary like a forward job's. */
function decodeClaimed(sessionId: string, encoded: string): ClaimedChange {
  const t = JSON.parse(encoded) as Record<string, string>;
  const session = SessionSchema.safeParse(JSON.parse(t.session ?? 'null'));
  if (!session.success) {
    const issue = session.error.issues[0];
    throw new Error(`pending change of session ${sessionId}: field session.${issue?.path.join('.') ?? ''}: ${issue?.message ?? 'invalid'}`);
  }
  const previous = JSON.parse(t.previous ?? '{}') as SessionSnapshot;
  return {
    sessionId,
    seq: Number(t.seq),
    seqFrom: Number(t.seqFrom ?? t.seq),
    kinds: (t.kinds ?? '').split(',').filter((k) => k !== '') as SessionChangeKind[],
    detectedAt: Number(t.detectedAt),
    ...(t.firstReceivedAt !== undefined ? { firstReceivedAt: Number(t.firstReceivedAt) } : {}),
    session: session.data,
    previous,
  };
}
