/**
 * XSOAR → Incydr. Every STATE_SYNC_INTERVAL (one run per deployment): search XSOAR for incidents of
 * the configured type closed since the checkpoint (small pages, halved when an answer is too large),
 * read each session's current state and its time, and set the state with change-state (100 ids per
 * call, grouped by target state) only where the close is newer; add the close notes as a session note
 * (or a note saying why the close was not carried), then move the checkpoint. One session's refusal
 * (400, 404) is recorded on it and never stops the run. Incidents the daemon closed itself (known by its
 * record) are skipped, and so is a close already carried across, so nothing ping-pongs and a repeated
 * window does no harm. The same run sweeps sessions whose pending change has no update job (a crash at
 * the wrong instant), so no change is left behind, and carries Incydr closes held while they were not
 * carried (STATE_SYNC switched on later).
 */
import type { RedisConnection } from '../infra/redis.js';
import type { IncydrClient } from '../code42/incydr-client.js';
import { Code42ResponseError } from '../code42/errors.js';
import { currentState, latestState } from '../code42/schemas.js';
import { CHANGE_STATE_BATCH, fitNote, type SessionActions } from '../code42/session-actions.js';
import type { Logger } from '../infra/logger.js';
import type { Ledger } from '../forward/ledger.js';
import { SESSION_LABEL } from '../xsoar/xsoar-client.js';
import { INCIDENT_STATUS, type ClosedIncident, type IncidentUpdates } from '../xsoar/incident-updates.js';
import { closeReasonForState, isClosedState, stateForCloseReason } from './close-reasons.js';
import { closeNotCarriedNote, closeReplacingNote, closedInIncydrNotes, closedInXsoarNote } from './notes.js';
import { refusalOf, type SyncRefusals } from './refusals.js';
import type { SyncMetrics } from './sync-metrics.js';
import { parseHeldClose, type SessionSyncRecord, type SyncState } from './sync-state.js';
import { closedUnderIntent, interruptedOwnClose, recordTtl, type RecordRetention } from './record-policy.js';
import type { UpdateSink } from './update-queue.js';

export interface XsoarCloseSyncOptions {
  /** Told of the sessions whose state the run set in Code42 (the poller's count index then expects it). */
  onStateWritten?: (ids: readonly string[], state: string) => Promise<void>;
  redis: RedisConnection;
  state: SyncState;
  ledger: Pick<Ledger, 'incidentFor'>;
  updates: IncidentUpdates;
  actions: SessionActions;
  /** For the rare check of a session's notes after an interrupted add-note. */
  code42: Pick<IncydrClient, 'getSession'>;
  sink: Pick<UpdateSink, 'enqueue'>;
  incidentType: string;
  /** STATE_SYNC allows XSOAR closes to reach Incydr. */
  enabled: boolean;
  closeReasonStates: Readonly<Record<string, string>>;
  intervalMs: number;
  /** How far back the very first search looks. */
  firstLookMs: number;
  metrics: SyncMetrics;
  /** Incydr closes held while STATE_SYNC did not carry them: carried by each run when it does now. */
  held?: { closeInXsoar: boolean; stateCloseReasons: Readonly<Record<string, string>>; trackUpdates?: boolean };
  /** When the sync record of a session closed on both sides may expire (see recordTtl); absent: never. */
  retention?: RecordRetention;
  /** Where refused writes are kept for /readyz (optional: absent, they are only logged and recorded per session). */
  refusals?: Pick<SyncRefusals, 'record' | 'cleared'>;
  logger: Logger;
  clock?: () => number;
}

export interface XsoarCloseSyncResult {
  found: number;
  synced: number;
  skippedOwn: number;
  code42Calls: number;
  swept: number;
  /** Closes not written: the session holds a newer state, or the same one (a note says so). */
  notCarried: number;
  /** Sessions whose read or write Code42 refused (recorded on the session; the run went on). */
  refused: number;
  /** Incydr closes held while they were not carried, carried now. */
  heldCarried?: number;
  /** Sessions whose changes were held while TRACK_UPDATES was off, queued for their incidents now. */
  heldUpdatesQueued?: number;
}

/** Sessions read at the same time before a batch of closes is written. */
const READ_CONCURRENCY = 8;

/** Runs `work` on every item, at most `limit` at a time; the first failure is thrown once all settled. */
async function inPool<T>(items: readonly T[], limit: number, work: (item: T) => Promise<void>): Promise<void> {
  let next = 0;
  let failure: { err: unknown } | undefined;
  const runner = async (): Promise<void> => {
    while (next < items.length) {
      const item = items[next++] as T;
      try {
        await work(item);
      } catch (err) {
        failure ??= { err };
      }
    }
  };
  await Promise.all(Array.from({ length: Math.min(limit, items.length) }, runner));
  if (failure) throw failure.err;
}


/** The session an incident was made for (dbotMirrorId, the code42alertid field or the session label). */
export function sessionOfIncident(inc: ClosedIncident): string | null {
  const mirror = inc.raw.dbotMirrorId;
  if (typeof mirror === 'string' && mirror !== '') return mirror;
  const field = inc.CustomFields.code42alertid;
  if (typeof field === 'string' && field !== '') return field;
  const labels = Array.isArray(inc.raw.labels) ? (inc.raw.labels as Array<{ type?: unknown; value?: unknown }>) : [];
  const label = labels.find((l) => l && l.type === SESSION_LABEL && typeof l.value === 'string');
  return label ? (label.value as string) : null;
}

/** A close found in XSOAR that is to be carried, with the session's state as just read from Code42. */
interface CloseToCarry {
  sessionId: string;
  incident: ClosedIncident;
  target: string;
  /** The session's state history length before the write (so the daemon's own entry is known). */
  states: number;
  /** The session note that goes with the write. */
  note: string;
  /** The session's begin time (when it leaves DEEP_LOOKBACK, its record may expire). */
  beginTime: number | undefined;
}

export class XsoarCloseSync {
  private readonly clock: () => number;

  constructor(private readonly opts: XsoarCloseSyncOptions) {
    this.clock = opts.clock ?? Date.now;
  }

  async runOnce(signal?: AbortSignal): Promise<XsoarCloseSyncResult> {
    this.opts.metrics.run();
    const result: XsoarCloseSyncResult = { found: 0, synced: 0, skippedOwn: 0, code42Calls: 0, swept: 0, notCarried: 0, refused: 0 };
    result.swept = await this.sweepPending();
    if (this.opts.held?.closeInXsoar) result.heldCarried = await this.carryHeldCloses(signal);
    if (this.opts.held?.trackUpdates) result.heldUpdatesQueued = await this.queueHeldUpdates();
    if (!this.opts.enabled) return result;

    const { redis, state, updates, logger } = this.opts;
    const now = this.clock();
    const stored = await redis.get(state.keys.xsoarCheckpoint);
    const checkpoint = stored && !Number.isNaN(Date.parse(stored)) ? Date.parse(stored) : now - this.opts.firstLookMs;
    // Re-read one interval before the checkpoint: a close indexed late is still found; the per-session
    // record makes the overlap harmless.
    const from = checkpoint - this.opts.intervalMs;
    const search = await updates.searchClosedPaged(this.opts.incidentType, from, now, signal);
    if (search.skipped > 0) logger.warn({ skipped: search.skipped }, 'closed incidents too large to read even one per page (XSOAR_MAX_RESPONSE_SIZE); their closes are not carried');
    const closed = search.incidents;
    result.found = closed.length;

    // Each session's current state is read (a few at a time), then each target state is written in one
    // batch right after: the state read is as fresh as it can be. change-state has no condition: a change
    // landing between the read and the write (about one round trip) is overwritten; README says so.
    const candidates: Array<{ sessionId: string; incident: ClosedIncident; record: SessionSyncRecord }> = [];
    for (const incident of closed) {
      const sessionId = sessionOfIncident(incident);
      if (!sessionId || (await this.opts.ledger.incidentFor(sessionId)) !== incident.id) continue;
      const record = await state.get(sessionId);
      if (this.closedByDaemon(record, incident)) {
        result.skippedOwn += 1;
        continue;
      }
      if (record.code42CloseSynced === incident.closed) continue;
      candidates.push({ sessionId, incident, record });
    }
    let forbidden = false;
    for (let i = 0; i < candidates.length && !forbidden; i += CHANGE_STATE_BATCH) {
      const toWrite: CloseToCarry[] = [];
      await inPool(candidates.slice(i, i + CHANGE_STATE_BATCH), READ_CONCURRENCY, async ({ sessionId, incident, record }) => {
        // One session's failure is that session's: recorded, and the run goes on.
        try {
          const carry = await this.decide(sessionId, incident, record, result, signal);
          if (carry) toWrite.push(carry);
        } catch (err) {
          if (!(await this.refused(sessionId, incident, err, result))) throw err;
        }
      });
      const byState = new Map<string, CloseToCarry[]>();
      for (const c of toWrite) byState.set(c.target, [...(byState.get(c.target) ?? []), c]);
      for (const [target, group] of byState) {
        if ((await this.write(target, group, result, signal)) === 'forbidden') {
          forbidden = true;
          break;
        }
      }
    }
    if (!forbidden) await redis.set(state.keys.xsoarCheckpoint, new Date(now).toISOString());
    return result;
  }

  /** Sets `target` on the sessions of `group` (change-state), then their notes and records. */
  private async write(target: string, group: CloseToCarry[], result: XsoarCloseSyncResult, signal?: AbortSignal): Promise<'done' | 'forbidden'> {
    const { state, logger } = this.opts;
    const ids = group.map((g) => g.sessionId);
    // Written before the call: the poller may see the new state before this run records it.
    for (const g of group) await state.set(g.sessionId, { wroteCode42State: target, wroteCode42At: this.clock(), wroteCode42Version: g.states + 1 });
    let outcome: Awaited<ReturnType<SessionActions['changeState']>>;
    try {
      outcome = await this.opts.actions.changeState(ids, target, signal);
    } catch (err) {
      const reason = refusalOf(err);
      if (reason !== 'forbidden') throw err;
      // The API client may not change sessions: every other write would be refused too. The checkpoint
      // stays, so these closes are carried once the permission is granted.
      await this.opts.refusals?.record('to-code42', reason, `change-state: ${(err as Error).message}`);
      for (const g of group) {
        await state.clear(g.sessionId, ['wroteCode42State', 'wroteCode42At', 'wroteCode42Version']);
        await state.set(g.sessionId, { refusedToCode42At: this.clock(), refusedToCode42What: `change-state to ${target} refused (forbidden): ${(err as Error).message}` });
      }
      result.refused += group.length;
      logger.warn({ sessions: ids.length, state: target, err }, 'Code42 refuses change-state to this API client: XSOAR closes are not carried to Incydr (grant the permission, or set STATE_SYNC=to-xsoar)');
      return 'forbidden';
    }
    result.code42Calls += outcome.calls;
    this.opts.metrics.code42('sessions.changeState', outcome.calls);
    await this.opts.onStateWritten?.(outcome.changed, target).catch((err: unknown) => logger.debug({ err }, 'could not tell the count index of the states written'));
    // Calls are counted per session they served (a batch call counts for each of its sessions).
    for (const id of ids) await state.countCode42Calls(id, 1);
    for (const refused of outcome.refused) {
      const g = group.find((x) => x.sessionId === refused.id);
      logger.warn({ alertId: refused.id, state: target, reason: refused.reason }, 'Code42 refused to change the state of this session; its XSOAR close is not carried across');
      await this.opts.refusals?.record('to-code42', /HTTP 404/.test(refused.reason) ? 'not_found' : 'rejected', `change-state ${refused.id}: ${refused.reason}`);
      await state.clear(refused.id, ['wroteCode42State', 'wroteCode42At', 'wroteCode42Version']);
      await state.set(refused.id, {
        code42CloseSynced: g?.incident.closed ?? '',
        lastToCode42What: `refused: ${refused.reason}`,
        refusedToCode42At: this.clock(),
        refusedToCode42What: `change-state to ${target}: ${refused.reason}`,
      });
      result.refused += 1;
    }
    const changed = new Set(outcome.changed);
    if (changed.size > 0) await this.opts.refusals?.cleared('to-code42');
    for (const { sessionId, incident, note, beginTime } of group) {
      if (!changed.has(sessionId)) continue;
      // The note before the record: a crash in between repeats the note's protocol (never a second note), not the state.
      try {
        result.code42Calls += await this.addCloseNote(sessionId, incident, note, signal);
      } catch (err) {
        if (!(await this.refused(sessionId, incident, err, result, 'add-note'))) throw err;
      }
      await state.set(sessionId, {
        code42CloseSynced: incident.closed,
        lastToCode42: this.clock(),
        lastToCode42What: `state ${target} (closed in XSOAR as "${incident.closeReason || 'no reason'}")`,
      });
      this.opts.metrics.close('to-code42');
      result.synced += 1;
      logger.info({ alertId: sessionId, incidentId: incident.id, state: target, closeReason: incident.closeReason }, 'incident closed in XSOAR; session state set in Incydr');
      // Both sides are closed: the record is kept while the poller can still see the session.
      const ttl = recordTtl(beginTime, this.opts.retention, this.clock());
      if (ttl !== undefined) await state.expireAfter(sessionId, ttl);
    }
    return 'done';
  }

  /**
   * The daemon's own close, known by its record: the close time it recorded, or (after a crash between
   * the close and the record) a close within moments of its recorded intent. Not by the close notes: an
   * analyst who reopens and closes again keeps them.
   */
  private closedByDaemon(record: SessionSyncRecord, incident: ClosedIncident): boolean {
    if (record.xsoarClosedByDaemon && record.xsoarClosedByDaemon === incident.closed) return true;
    return closedUnderIntent(record.xsoarCloseIntentAt, incident.closed);
  }

  /**
   * Reads the session's current state (and its time) before writing: the XSOAR close is carried only
   * when it is newer than that state. Otherwise the session gets a note saying what was not carried and
   * why, and nothing else changes. Returns the close to write, if any.
   */
  private async decide(sessionId: string, incident: ClosedIncident, record: SessionSyncRecord, result: XsoarCloseSyncResult, signal?: AbortSignal): Promise<CloseToCarry | null> {
    const { state, metrics, logger } = this.opts;
    const target = stateForCloseReason(incident.closeReason, this.opts.closeReasonStates);
    const session = await this.opts.code42.getSession(sessionId);
    result.code42Calls += 1;
    metrics.code42('sessions.get');
    await state.countCode42Calls(sessionId, 1);
    if (!session) {
      await this.opts.refusals?.record('to-code42', 'not_found', `session ${sessionId} is gone`);
      await state.set(sessionId, { code42CloseSynced: incident.closed, lastToCode42What: 'not carried: the session is gone from Incydr', refusedToCode42At: this.clock(), refusedToCode42What: 'session not found (404)' });
      result.refused += 1;
      return null;
    }
    const latest = latestState(session.states);
    const current = currentState(session) ?? 'OPEN';
    const currentAt = latest?.sourceTimestamp ?? 0;
    const closedAt = Date.parse(incident.closed);
    const ownState = record.wroteCode42State !== undefined && record.wroteCode42State === current && record.wroteCode42Version === (session.states ?? []).length;
    const newer = currentAt > closedAt && !ownState;
    // The state is the daemon's own write (of this close, interrupted before its record, or of an earlier one): the close stands; note and record.
    if (ownState && current === target) {
      // The note the write went with: what the daemon's entry replaced is the entry before it.
      const before = [...(session.states ?? [])].sort((x, y) => (x.sourceTimestamp ?? 0) - (y.sourceTimestamp ?? 0)).at(-2);
      const replaced = before && isClosedState(before.state ?? '') && (before.sourceTimestamp ?? 0) <= closedAt ? before : undefined;
      const note = replaced ? closeReplacingNote(incident, { state: replaced.state ?? '', user: replaced.userId ?? null, at: replaced.sourceTimestamp ?? 0 }) : closedInXsoarNote(incident);
      try {
        result.code42Calls += await this.addCloseNote(sessionId, incident, note, signal);
      } catch (err) {
        if (!(await this.refused(sessionId, incident, err, result, 'add-note'))) throw err;
      }
      await state.set(sessionId, { code42CloseSynced: incident.closed, lastToCode42: this.clock(), lastToCode42What: `state ${target} (closed in XSOAR as "${incident.closeReason || 'no reason'}")` });
      this.opts.metrics.close('to-code42');
      result.synced += 1;
      return null;
    }
    if (!newer && current !== target) {
      // A close made in Incydr before this one is replaced; the note says by what, and what it was.
      const replaces = isClosedState(current) && !ownState && latest ? { state: current, user: latest.userId ?? null, at: currentAt } : undefined;
      const note = replaces ? closeReplacingNote(incident, replaces) : closedInXsoarNote(incident);
      return { sessionId, incident, target, states: (session.states ?? []).length, note, beginTime: session.beginTime ?? undefined };
    }
    const reason = newer ? 'newer_state' : 'same_state';
    metrics.skipped('to-code42', reason);
    result.notCarried += 1;
    const why = newer
      ? `not carried: the session went to ${current}${latest?.userId ? ` (by ${latest.userId})` : ''} at ${new Date(currentAt).toISOString()}, after this close`
      : `the session is already ${current}`;
    logger.info({ alertId: sessionId, incidentId: incident.id, state: current, closeReason: incident.closeReason }, `incident closed in XSOAR; ${why}`);
    await state.set(sessionId, { code42CloseSynced: incident.closed, lastToCode42: this.clock(), lastToCode42What: why });
    try {
      result.code42Calls += await this.addCloseNote(sessionId, incident, closeNotCarriedNote(incident, why), signal);
    } catch (err) {
      if (!(await this.refused(sessionId, incident, err, result, 'add-note'))) throw err;
    }
    return null;
  }

  /** A write of one session refused (4xx): recorded on the session and counted; false when `err` is no refusal. */
  private async refused(sessionId: string, incident: ClosedIncident, err: unknown, result: XsoarCloseSyncResult, what = 'read'): Promise<boolean> {
    const reason = refusalOf(err) ?? (err instanceof Code42ResponseError ? 'rejected' : undefined);
    if (!reason) return false;
    const message = (err as Error).message;
    await this.opts.refusals?.record('to-code42', reason, `${what} ${sessionId}: ${message}`);
    await this.opts.state.set(sessionId, {
      code42CloseSynced: incident.closed,
      ...(what === 'add-note' ? { code42NoteSent: incident.closed } : {}),
      refusedToCode42At: this.clock(),
      refusedToCode42What: `${what} refused (${reason}): ${message}`,
    });
    result.refused += 1;
    this.opts.logger.warn({ alertId: sessionId, incidentId: incident.id, reason, err: message }, `Code42 refused the ${what} of this session; recorded, and the run goes on`);
    return true;
  }

  /**
   * The close notes as a session note, once: the intent is stored first; after an interruption the
   * session's notes are read back (one more Code42 call) before sending again. Returns Code42 calls made.
   */
  private async addCloseNote(sessionId: string, incident: ClosedIncident, note: string, signal?: AbortSignal): Promise<number> {
    const { state, metrics } = this.opts;
    const record = await state.get(sessionId);
    if (record.code42NoteSent === incident.closed) return 0;
    let calls = 0;
    if (record.code42NoteIntent === incident.closed) {
      const session = await this.opts.code42.getSession(sessionId);
      calls += 1;
      metrics.code42('sessions.get');
      const notes = (session?.notes ?? []) as Array<{ content?: unknown }>;
      if (notes.some((n) => n?.content === fitNote(note))) {
        await state.set(sessionId, { code42NoteSent: incident.closed });
        await state.countCode42Calls(sessionId, calls);
        metrics.note('code42', 'skipped');
        this.opts.logger.info({ alertId: sessionId, incidentId: incident.id }, 'the session note of this close had reached Code42 before the interruption; not sent again');
        return calls;
      }
    }
    await state.set(sessionId, { code42NoteIntent: incident.closed });
    await this.opts.actions.addNote(sessionId, note, signal);
    calls += 1;
    metrics.code42('sessions.addNote');
    metrics.note('code42', 'sent');
    await state.set(sessionId, { code42NoteSent: incident.closed });
    await state.countCode42Calls(sessionId, calls);
    return calls;
  }

  /**
   * Changes of sessions made while TRACK_UPDATES was off, not written to their incidents then: each becomes
   * the session's pending change again (one update and one note telling what happened meanwhile), unless a
   * change of the session is already on its way (it carries them). Released by the updater once written.
   */
  private async queueHeldUpdates(): Promise<number> {
    const { state, sink, logger } = this.opts;
    let queued = 0;
    for (const sessionId of await state.heldUpdateIds()) {
      const outcome = await state.requeueHeldUpdate(sessionId, this.clock());
      if (outcome === 'invalid') {
        logger.warn({ alertId: sessionId }, 'changes held while TRACK_UPDATES was off are unreadable; the next change of the session updates its incident');
        await state.releaseUpdate(sessionId);
        continue;
      }
      if (outcome === 'queued') {
        queued += 1;
        logger.info({ alertId: sessionId }, 'changes made while TRACK_UPDATES was off go to the incident now');
      }
      await sink.enqueue(sessionId);
    }
    return queued;
  }

  /**
   * Carries the Incydr closes made while STATE_SYNC did not carry them (off, or to-code42): each held
   * session whose incident is still open is closed, as the updater would have, with the daemon's intent
   * recorded first. One failing incident is left held for the next run.
   */
  private async carryHeldCloses(signal?: AbortSignal): Promise<number> {
    const { state, updates, logger, metrics } = this.opts;
    const held = this.opts.held;
    if (!held) return 0;
    let carried = 0;
    for (const sessionId of await state.heldSessionIds()) {
      const record = await state.get(sessionId);
      const close = parseHeldClose(record.heldIncydrClose);
      const incidentId = await this.opts.ledger.incidentFor(sessionId);
      if (!close || !incidentId) {
        await state.release(sessionId);
        continue;
      }
      try {
        const incident = await updates.load(incidentId, signal);
        if (incident.status !== INCIDENT_STATUS.done) {
          const reason = closeReasonForState(close.state, held.stateCloseReasons);
          await state.set(sessionId, { xsoarCloseIntentAt: this.clock() });
          const closed = await updates.close(incidentId, reason, closedInIncydrNotes(close.state, close.user, close.at), signal);
          await state.set(sessionId, { xsoarClosedByDaemon: closed.closed ?? '', lastToXsoar: this.clock(), lastToXsoarWhat: `closed as ${reason} (held Incydr close of ${new Date(close.at).toISOString()})` });
          await state.clear(sessionId, ['xsoarCloseIntentAt']);
          metrics.close('to-xsoar');
          carried += 1;
          logger.info({ alertId: sessionId, incidentId, state: close.state, closeReason: reason }, 'session closed in Incydr while closes were not carried; incident closed now');
        } else {
          // A crash between this close and its record (as the updater does): the close made under the recorded
          // intent is the daemon's own. Recorded, and the intent forgotten: left behind, it would make any
          // analyst's re-close within OWN_CLOSE_SLACK_MS of it pass for the daemon's, never carried to Incydr.
          const own = interruptedOwnClose(record, incident.closed);
          if (own !== undefined) {
            await state.set(sessionId, { xsoarClosedByDaemon: own });
            await state.clear(sessionId, ['xsoarCloseIntentAt']);
            logger.info({ alertId: sessionId, incidentId }, 'the close of this held Incydr close had reached XSOAR before the interruption; recorded as the daemon\'s own');
          }
        }
        await state.release(sessionId);
      } catch (err) {
        const reason = refusalOf(err);
        if (!reason) throw err;
        await this.opts.refusals?.record('to-xsoar', reason, `held close of ${sessionId}: ${(err as Error).message}`);
        await state.set(sessionId, { refusedToXsoarAt: this.clock(), refusedToXsoarWhat: `held close refused (${reason}): ${(err as Error).message}` });
        await state.release(sessionId);
      }
    }
    return carried;
  }

  /** Makes sure every session with a pending change has its update job. */
  private async sweepPending(): Promise<number> {
    const ids = await this.opts.state.pendingSessionIds();
    for (const id of ids) await this.opts.sink.enqueue(id);
    return ids.length;
  }
}
