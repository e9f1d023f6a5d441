/**
 * XSOAR → Incydr. Every STATE_SYNC_INTERVAL (one run per deployment): search XSOAR for incidents of
 * the configured type closed since the checkpoint, set their sessions' state with change-state (100 ids
 * per call, grouped by target state), add the close notes as a session note, then move the checkpoint.
 * Incidents the daemon closed itself are skipped, and so is a close already carried across, so nothing
 * ping-pongs and a repeated window does no harm. The same run sweeps sessions whose pending change has
 * no update job (a crash at the wrong instant), so no change is left behind.
 */
import type { Redis } from 'ioredis';
import type { IncydrClient } from '../code42/incydr-client.js';
import { fitNote, type SessionActions } from '../code42/session-actions.js';
import type { Logger } from '../infra/logger.js';
import type { Ledger } from '../forward/ledger.js';
import { SESSION_LABEL } from '../xsoar/xsoar-client.js';
import type { ClosedIncident, IncidentUpdates } from '../xsoar/incident-updates.js';
import { stateForCloseReason } from './close-reasons.js';
import { CLOSED_IN_INCYDR_PREFIX, closedInXsoarNote } from './notes.js';
import type { SyncMetrics } from './sync-metrics.js';
import type { SyncState } from './sync-state.js';
import type { UpdateSink } from './update-queue.js';

export interface XsoarCloseSyncOptions {
  redis: Redis;
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
  logger: Logger;
  clock?: () => number;
}

export interface XsoarCloseSyncResult {
  found: number;
  synced: number;
  skippedOwn: number;
  code42Calls: number;
  swept: number;
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

export class XsoarCloseSync {
  private readonly clock: () => number;

  constructor(private readonly opts: XsoarCloseSyncOptions) {
    this.clock = opts.clock ?? Date.now;
  }

  async runOnce(signal?: AbortSignal): Promise<XsoarCloseSyncResult> {
    this.opts.metrics.run();
    const result: XsoarCloseSyncResult = { found: 0, synced: 0, skippedOwn: 0, code42Calls: 0, swept: 0 };
    result.swept = await this.sweepPending();
    if (!this.opts.enabled) return result;

    const { redis, state, updates, logger } = this.opts;
    const now = this.clock();
    const stored = await redis.get(state.keys.xsoarCheckpoint);
    const checkpoint = stored && !Number.isNaN(Date.parse(stored)) ? Date.parse(stored) : now - this.opts.firstLookMs;
    // Re-read one interval before the checkpoint: a close indexed late is still found; the per-session
    // record makes the overlap harmless.
    const from = checkpoint - this.opts.intervalMs;
    const closed = await updates.searchClosed(this.opts.incidentType, from, now, signal);
    result.found = closed.length;

    const byState = new Map<string, Array<{ sessionId: string; incident: ClosedIncident }>>();
    for (const incident of closed) {
      const sessionId = sessionOfIncident(incident);
      if (!sessionId || (await this.opts.ledger.incidentFor(sessionId)) !== incident.id) continue;
      const record = await state.get(sessionId);
      // Closed by the daemon itself: recorded, or (after a crash between the close and the record) its close notes.
      if ((record.xsoarClosedByDaemon && record.xsoarClosedByDaemon === incident.closed) || incident.closeNotes.startsWith(CLOSED_IN_INCYDR_PREFIX)) {
        result.skippedOwn += 1;
        continue;
      }
      if (record.code42CloseSynced === incident.closed) continue;
      const target = stateForCloseReason(incident.closeReason, this.opts.closeReasonStates);
      const group = byState.get(target) ?? [];
      group.push({ sessionId, incident });
      byState.set(target, group);
    }

    for (const [target, group] of byState) {
      const ids = group.map((g) => g.sessionId);
      // Written before the call: the poller may see the new state before this run records it.
      for (const id of ids) await state.set(id, { wroteCode42State: target, wroteCode42At: this.clock() });
      const outcome = await this.opts.actions.changeState(ids, target, signal);
      result.code42Calls += outcome.calls;
      this.opts.metrics.code42('sessions.changeState', outcome.calls);
      // Calls are counted per session they served (a batch call counts for each of its sessions).
      for (const id of ids) await state.countCode42Calls(id, 1);
      for (const refused of outcome.refused) {
        logger.warn({ alertId: refused.id, state: target, reason: refused.reason }, 'Code42 refused to change the state of this session; its XSOAR close is not carried across');
        await state.set(refused.id, { code42CloseSynced: group.find((g) => g.sessionId === refused.id)?.incident.closed ?? '', lastToCode42What: `refused: ${refused.reason}` });
      }
      const changed = new Set(outcome.changed);
      for (const { sessionId, incident } of group) {
        if (!changed.has(sessionId)) continue;
        result.code42Calls += await this.addCloseNote(sessionId, incident, signal);
        await state.set(sessionId, {
          code42CloseSynced: incident.closed,
          lastToCode42: this.clock(),
          lastToCode42What: `state ${target} (closed in XSOAR as "${incident.closeReason || 'no reason'}")`,
        });
        this.opts.metrics.close('to-code42');
        result.synced += 1;
        logger.info({ alertId: sessionId, incidentId: incident.id, state: target, closeReason: incident.closeReason }, 'incident closed in XSOAR; session state set in Incydr');
      }
    }
    await redis.set(state.keys.xsoarCheckpoint, new Date(now).toISOString());
    return result;
  }

  /**
   * The close notes as a session note, once: the intent is stored first; after an interruption the
   * session's notes are read back (one more Code42 call) before sending again. Returns Code42 calls made.
   */
  private async addCloseNote(sessionId: string, incident: ClosedIncident, signal?: AbortSignal): Promise<number> {
    const { state, metrics } = this.opts;
    const record = await state.get(sessionId);
    if (record.code42NoteSent === incident.closed) return 0;
    const note = closedInXsoarNote(incident);
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

  /** Makes sure every session with a pending change has its update job. */
  private async sweepPending(): Promise<number> {
    const ids = await this.opts.state.pendingSessionIds();
    for (const id of ids) await this.opts.sink.enqueue(id);
    return ids.length;
  }
}
