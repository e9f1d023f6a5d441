/**
 * Session → incident. The BullMQ worker of the update queue: for each session with a pending change,
 * load its incident, overwrite only what the daemon owns, add one war-room note saying what changed,
 * and carry a close made in Incydr over to XSOAR. A closed incident gets the note only, and is reopened
 * only when the session went to OPEN_NEW_DATA (REOPEN_ON_NEW_DATA).
 */
import { UnrecoverableError, type Job, type Queue } from 'bullmq';
import { Code42AuthError, Code42RequestError } from '../code42/errors.js';
import type { IncydrClient } from '../code42/incydr-client.js';
import { currentSeverity, currentState, latestState, type FileEvent, type Session } from '../code42/schemas.js';
import type { Logger } from '../infra/logger.js';
import type { Ledger } from '../forward/ledger.js';
import type { SessionEnricher } from '../forward/session-enricher.js';
import { eventsWorthKeeping } from '../xsoar/body-budget.js';
import { XsoarRejectedError } from '../xsoar/errors.js';
import { mapSessionToIncident, type MappingOptions } from '../xsoar/incident-mapper.js';
import { ForwarderError, type ErrorFacts } from '../infra/errors.js';
import type { JobContext } from '../jobs/job-worker.js';
import type { JobRuntime } from '../jobs/runtime.js';
import type { IncidentRequest } from '../xsoar/incident-request.js';
import { INCIDENT_STATUS, ZERO_TIME, isClosedInvestigation, type IncidentPatch, type IncidentUpdates, type LoadedIncident } from '../xsoar/incident-updates.js';
import { closeReasonForState, isClosedState } from './close-reasons.js';
import { closedInIncydrNotes, describeUpdate, hasNews, noteMarker, updateNote, type UpdateSummary } from './notes.js';
import { refusalOf, type SyncRefusals } from './refusals.js';
import type { SyncMetrics } from './sync-metrics.js';
import { interruptedOwnClose, recordTtl, type RecordRetention } from './record-policy.js';
import { parseHeldUpdate, type ClaimedChange, type SessionSyncRecord, type SyncState } from './sync-state.js';
import type { UpdateJobData, UpdateSink } from './update-queue.js';

export interface IncidentUpdaterPolicy {
  /** TRACK_UPDATES: push field changes and notes. */
  trackUpdates: boolean;
  /** STATE_SYNC allows Incydr closes to close incidents. */
  closeInXsoar: boolean;
  reopenOnNewData: boolean;
  /** Incydr closed state → XSOAR close reason. */
  stateCloseReasons: Readonly<Record<string, string>>;
}

export interface IncidentUpdaterOptions {
  /** The runtime the worker runs on (guards, failed set, shutdown). */
  runtime: JobRuntime;
  concurrency: number;
  queue: Queue<UpdateJobData>;
  sink: UpdateSink;
  state: SyncState;
  ledger: Pick<Ledger, 'incidentFor'>;
  updates: IncidentUpdates;
  /** Names of actors and rules (no file events: those are fetched only when the session has new ones). */
  names: Pick<SessionEnricher, 'enrich'>;
  code42: Pick<IncydrClient, 'getSessionEvents'>;
  mapping: MappingOptions;
  policy: IncidentUpdaterPolicy;
  metrics: SyncMetrics;
  logger: Logger;
  /** Where refused writes are kept for /readyz (absent: recorded on the session only). */
  refusals?: Pick<SyncRefusals, 'record' | 'cleared'>;
  /** When the record of a session closed on both sides may expire; absent: never. */
  retention?: RecordRetention;
  clock?: () => number;
}

/** The incident of a session is gone from XSOAR (deleted): no update can ever reach it. */
export class IncidentGoneError extends ForwarderError {
  constructor(
    readonly sessionId: string,
    readonly incidentId: string,
    detail: string,
  ) {
    super('INCIDENT_GONE', `incident ${incidentId} of session ${sessionId} no longer exists in XSOAR (deleted?): ${detail}; 'replay --force' creates it again`);
  }

  override get facts(): ErrorFacts {
    return { nature: 'permanent', failure: 'gone', upstream: 'xsoar' };
  }
}

/** A session's events as the incident already holds them (rawJSON), to avoid a Code42 call when none are new. */
function eventsFromRawJson(rawJSON: string): { events: FileEvent[]; total: number } | null {
  try {
    const raw = JSON.parse(rawJSON) as { fileevents?: unknown; fileevents_total?: unknown };
    if (!Array.isArray(raw.fileevents)) return null;
    const total = typeof raw.fileevents_total === 'number' ? raw.fileevents_total : raw.fileevents.length;
    return { events: raw.fileevents as FileEvent[], total };
  } catch {
    return null;
  }
}

function eventCount(s: Session): number {
  return (s.noRiskEvents ?? 0) + (s.lowEvents ?? 0) + (s.moderateEvents ?? 0) + (s.highEvents ?? 0) + (s.criticalEvents ?? 0);
}

const same = (a: unknown, b: unknown): boolean => JSON.stringify(a) === JSON.stringify(b);

/**
 * What the daemon owns in an incident, and may overwrite: severity (only upward, and never over a
 * manual change), code42severity, code42alertstate, code42alertdescription, the file-event rows and
 * the rawJSON. Everything else (owner, phase, notes, other fields, name, details) is sent back as loaded.
 */
export function ownedPatch(current: LoadedIncident, mapped: IncidentRequest, opts: { wroteSeverity: number; reopen: boolean }): IncidentPatch {
  const cf = mapped.CustomFields;
  const owned: Record<string, unknown> = {
    code42severity: cf.code42severity,
    code42alertstate: cf.code42alertstate,
    code42alertdescription: cf.code42alertdescription,
  };
  if (cf.code42fileevents !== undefined) {
    owned.code42fileevents = cf.code42fileevents;
    owned.code42fileeventsversion = cf.code42fileeventsversion;
  }
  const customFields: Record<string, unknown> = {};
  for (const [k, v] of Object.entries(owned)) if (!same(current.CustomFields[k], v)) customFields[k] = v;
  const fields: Record<string, unknown> = {};
  if (mapped.rawJSON !== current.rawJSON) fields.rawJSON = mapped.rawJSON;
  // Upward only, and only while the severity is still the one the daemon wrote (an analyst's own choice stays).
  if (mapped.severity > current.severity && current.severity === opts.wroteSeverity) fields.severity = mapped.severity;
  if (opts.reopen && current.status === INCIDENT_STATUS.done) {
    fields.status = INCIDENT_STATUS.active;
    fields.closed = ZERO_TIME;
  }
  return Object.keys(customFields).length === 0 && Object.keys(fields).length === 0 ? null : { fields, customFields };
}

export class IncidentUpdater {
  private readonly clock: () => number;

  constructor(private readonly opts: IncidentUpdaterOptions) {
    this.clock = opts.clock ?? Date.now;
    opts.runtime.worker<UpdateJobData, { applied: number }>({
      queue: opts.queue,
      noun: 'incident update',
      concurrency: opts.concurrency,
      process: (job, ctx) => this.process(job, ctx),
      alertIdOf: (job) => (typeof job.data?.sessionId === 'string' ? job.data.sessionId : String(job.id)),
      failedMessage: 'incident update moved to the failed set',
      events: { onFailed: (failure, final) => opts.metrics.failure(failure, final) },
      // A change that arrived in the instant between the job's last claim and its removal.
      onCompleted: (job) => {
        void this.opts.state
          .pending(job.data.sessionId)
          .then((p) => (p ? this.opts.sink.enqueue(job.data.sessionId) : undefined))
          .catch((err: unknown) => opts.logger.warn({ err, alertId: job.data.sessionId }, 'could not check for a late change (the periodic sweep will)'));
      },
    });
  }

  private async process(job: Job<UpdateJobData>, ctx: JobContext): Promise<{ applied: number }> {
    const sessionId = typeof job.data?.sessionId === 'string' ? job.data.sessionId : '';
    if (!sessionId) {
      this.opts.metrics.failure('invalid_input', true);
      throw new UnrecoverableError('invalid update job data: field sessionId: missing');
    }
    let applied = 0;
    // Changes that arrive while this runs are claimed by the same run, in order.
    for (let change = await this.opts.state.claim(sessionId); change; change = await this.opts.state.claim(sessionId)) {
      await this.apply(change, ctx.log, ctx.signal);
      applied += 1;
      // Within UPDATE_INTERVAL of this update, the next change waits (the completion re-enqueues it, delayed).
      if ((await this.opts.sink.delayFor(sessionId)) > 0) break;
    }
    return { applied };
  }

  /**
   * Applies one change. A write XSOAR refuses (4xx) is recorded on the session and for /readyz before
   * the failure goes on to the job's outcome.
   */
  private async apply(change: ClaimedChange, log: Logger, signal: AbortSignal | undefined): Promise<void> {
    try {
      await this.applyChange(change, log, signal);
    } catch (err) {
      const reason = refusalOf(err);
      if (reason && !(err instanceof Code42AuthError) && !(err instanceof Code42RequestError)) {
        const message = (err as Error).message;
        await this.opts.refusals?.record('to-xsoar', reason, `incident of ${change.sessionId}: ${message}`).catch(() => undefined);
        await this.opts.state.set(change.sessionId, { refusedToXsoarAt: this.clock(), refusedToXsoarWhat: `update refused (${reason}): ${message}` }).catch(() => undefined);
      }
      throw err;
    }
  }

  private async applyChange(change: ClaimedChange, log: Logger, signal: AbortSignal | undefined): Promise<void> {
    const { state, updates, policy, metrics } = this.opts;
    const { sessionId, session, seq } = change;
    const incidentId = await this.opts.ledger.incidentFor(sessionId);
    if (!incidentId) throw new Error(`session ${sessionId} has no incident in the ledger yet (its create may still be queued); will retry`);
    const record = await state.get(sessionId);
    // A record left to expire (both sides closed) is in use again.
    await state.keep(sessionId);
    // Changes held while TRACK_UPDATES was off: the incident still shows what it showed then, so events,
    // alerts and severity count from there (the state was the state sync's business meanwhile).
    const held = parseHeldUpdate(record.heldUpdate);
    const previous = policy.trackUpdates && held ? { ...change.previous, ...held.since } : change.previous;

    const latest = latestState(session.states);
    const newState = currentState(session) ?? previous.state;
    // An untimed state entry: when the change was noticed is the best time there is.
    const closedAt = latest?.sourceTimestamp ?? change.detectedAt;
    // A state set after the last snapshot counts even when it equals the old one (reopened and closed
    // again between two polls): the state history says so.
    const stateChanged =
      newState !== previous.state || (latest?.sourceTimestamp != null && previous.lastUpdated != null && latest.sourceTimestamp > previous.lastUpdated);
    // The daemon's own change-state coming back through the poller is nobody's news: the same state, and
    // the history entry the daemon's write made (an analyst setting the same state later adds another).
    const ownState =
      stateChanged &&
      record.wroteCode42State === newState &&
      (record.wroteCode42Version === undefined || (session.states ?? []).length === record.wroteCode42Version);
    // The session moved on from the daemon's write: that record no longer names anything. (A change read
    // before the write, its history shorter than the write's entry, says nothing about it.)
    const pastOwnWrite = record.wroteCode42Version === undefined || (session.states ?? []).length >= record.wroteCode42Version;
    if (stateChanged && !ownState && pastOwnWrite && record.wroteCode42State !== undefined) await state.clear(sessionId, ['wroteCode42State', 'wroteCode42At', 'wroteCode42Version']);
    const closedInIncydr = stateChanged && !ownState && isClosedState(newState);
    const severity = currentSeverity(session);
    const oldAlerts = new Set(previous.alertIds);
    const alerts = session.triggeredAlerts ?? [];
    const newAlerts = alerts.filter((a) => a.alertId && !oldAlerts.has(a.alertId));
    const oldRules = new Set(alerts.filter((a) => a.alertId && oldAlerts.has(a.alertId)).map((a) => a.ruleId));
    const newRuleAlerts = newAlerts.filter((a) => !oldRules.has(a.ruleId));

    let code42Calls = 0;
    const summary: UpdateSummary = {
      newEvents: Math.max(0, eventCount(session) - previous.eventCount),
      newRules: newRuleAlerts.length > 0 ? (await this.opts.names.enrich({ ...session, triggeredAlerts: newRuleAlerts })).ruleNames : [],
      ...(severity > previous.severity ? { severity: { from: previous.severity, to: severity } } : {}),
      ...(stateChanged && !ownState ? { state: newState } : {}),
      ...(closedInIncydr && latest ? { closedBy: { user: latest.userId || 'an Incydr user', at: closedAt } } : {}),
    };

    let incident = await this.load(sessionId, incidentId, signal);
    const wasClosed = incident.status === INCIDENT_STATUS.done;
    // Reopened only when the new data came after the XSOAR close: a close made later is the newer state, and stays.
    const closedLater = incident.closed !== null && Date.parse(incident.closed) > closedAt;
    const reopen = wasClosed && policy.reopenOnNewData && stateChanged && newState === 'OPEN_NEW_DATA' && !closedLater;
    const done: SessionSyncRecord = {};
    const what: string[] = [];

    if (policy.trackUpdates && (!wasClosed || reopen)) {
      const names = await this.opts.names.enrich(session);
      let events = eventsFromRawJson(incident.rawJSON);
      if (this.opts.mapping.includeFiles && (!events || change.kinds.includes('events') || summary.newEvents > 0)) {
        const fetched = await this.opts.code42.getSessionEvents(sessionId, eventsWorthKeeping(this.opts.mapping));
        code42Calls += 1;
        metrics.code42('sessions.events');
        events = { events: fetched.events, total: Math.max(fetched.totalCount, fetched.events.length) };
      }
      const mapped = mapSessionToIncident(session, { ...names, events: events?.events ?? [], eventsTotal: events?.total ?? 0 }, this.opts.mapping);
      const wroteSeverity = record.wroteSeverity ?? previous.severity;
      let patch: IncidentPatch = null;
      const merge = (cur: LoadedIncident): IncidentPatch => (patch = ownedPatch(cur, mapped, { wroteSeverity, reopen }));
      const outcome = await updates.update(incidentId, merge, { loaded: incident, ...(signal ? { signal } : {}) });
      metrics.versionConflicts(Math.max(0, outcome.writes - 1));
      incident = outcome.incident;
      if (outcome.writes > 0) what.push('fields');
      const written = (patch as IncidentPatch)?.fields.severity;
      if (typeof written === 'number') done.wroteSeverity = written;
      if (reopen) {
        summary.reopened = true;
        metrics.close('reopened');
        what.push('reopened');
      }
    }

    if (policy.trackUpdates && hasNews(summary)) {
      const sent = await this.note(incident, change, summary, wasClosed && !reopen, record, log, signal);
      if (sent) what.push('note');
    }

    // After a crash between the close and its record: the close made under the recorded intent is the daemon's.
    const interrupted = closedInIncydr && incident.status === INCIDENT_STATUS.done ? interruptedOwnClose(record, incident.closed) : undefined;
    if (interrupted !== undefined) done.xsoarClosedByDaemon = interrupted;
    if (closedInIncydr && policy.closeInXsoar && incident.status !== INCIDENT_STATUS.done && latest) {
      const reason = closeReasonForState(newState, policy.stateCloseReasons);
      // The intent first: a crash after the close still leaves it recognisable as the daemon's own.
      await state.set(sessionId, { xsoarCloseIntentAt: this.clock() });
      const closed = await updates.close(incidentId, reason, closedInIncydrNotes(newState, latest.userId || 'an Incydr user', closedAt), signal);
      done.xsoarClosedByDaemon = closed.closed ?? '';
      incident = closed;
      metrics.close('to-xsoar');
      what.push(`closed as ${reason}`);
      log.info({ incidentId, state: newState, closeReason: reason }, 'session closed in Incydr; incident closed');
    }

    // An Incydr close STATE_SYNC does not carry now is kept, and carried by the state-sync run once it does;
    // a later state of the session replaces it.
    if (closedInIncydr && !policy.closeInXsoar && incident.status !== INCIDENT_STATUS.done && latest) {
      await state.hold(sessionId, { state: newState, user: latest.userId || 'an Incydr user', at: closedAt });
    } else if (stateChanged && !ownState && record.heldIncydrClose !== undefined) {
      await state.release(sessionId);
    }

    // TRACK_UPDATES=false: what the incident was not told is kept, and told once it is on (see XsoarCloseSync).
    const fieldNews = summary.newEvents > 0 || summary.severity !== undefined || newAlerts.length > 0;
    if (!policy.trackUpdates && fieldNews) {
      const kinds = change.kinds.filter((k) => k !== 'state');
      await state.holdUpdate(sessionId, { seq, kinds, detectedAt: change.detectedAt, session }, { severity: previous.severity, alertIds: previous.alertIds, eventCount: previous.eventCount });
    }

    if (ownState) metrics.update('own');
    else if (what.length === 0) metrics.update('unchanged');
    else metrics.update(wasClosed && !reopen ? 'noted' : 'applied');
    await state.countCode42Calls(sessionId, code42Calls);
    await state.finish(sessionId, seq, {
      ...done,
      ...(what.length > 0 ? { lastToXsoar: this.clock(), lastToXsoarWhat: `${what.join(', ')}: ${describeUpdate(summary) || 'no visible change'}` } : {}),
    });
    if (done.xsoarClosedByDaemon !== undefined) await state.clear(sessionId, ['xsoarCloseIntentAt']);
    if (policy.trackUpdates && held) await state.releaseUpdate(sessionId);
    if (what.length > 0) await this.opts.refusals?.cleared('to-xsoar');
    // Closed on both sides: the record is kept while the poller can still see the session, then expires.
    if (incident.status === INCIDENT_STATUS.done && isClosedState(newState)) {
      const ttl = recordTtl(session.beginTime ?? undefined, this.opts.retention, this.clock());
      if (ttl !== undefined) await state.expireAfter(sessionId, ttl);
    }
    if (what.length > 0) log.info({ incidentId, seq, changes: describeUpdate(summary), did: what }, 'incident updated from its session');
  }

  /**
   * One war-room note per change, never two: the intent (seq) is stored before sending, and an
   * interrupted send is checked against the war room (the note's marker) before sending again.
   */
  private async note(
    incident: LoadedIncident,
    change: ClaimedChange,
    summary: UpdateSummary,
    incidentClosed: boolean,
    record: SessionSyncRecord,
    log: Logger,
    signal: AbortSignal | undefined,
  ): Promise<boolean> {
    const { state, updates, metrics } = this.opts;
    const { sessionId, seq } = change;
    if ((record.noteSent ?? -1) >= seq) return false;
    const marker = noteMarker(sessionId, seq);
    if (record.noteIntent === seq) {
      try {
        const texts = await updates.entryTexts(incident.investigationId, (record.noteIntentAt ?? this.clock()) - 60_000, signal);
        if (texts.some((t) => t.includes(marker))) {
          await state.set(sessionId, { noteSent: seq });
          metrics.note('xsoar', 'skipped');
          log.info({ incidentId: incident.id, seq }, 'the note of this change had reached XSOAR before the interruption; not sent again');
          return true;
        }
      } catch (err) {
        log.warn({ err, incidentId: incident.id }, 'could not read the war room to check for an interrupted note; sending it');
      }
    }
    await state.set(sessionId, { noteIntent: seq, noteIntentAt: this.clock() });
    try {
      await updates.addNote(incident.investigationId, updateNote(sessionId, seq, summary, incidentClosed), signal);
      metrics.note('xsoar', 'sent');
    } catch (err) {
      if (!isClosedInvestigation(err)) throw err;
      // Retrying cannot help: XSOAR takes no entries in a closed investigation. Said once, loudly.
      metrics.note('xsoar', 'refused');
      log.warn({ incidentId: incident.id, seq, note: describeUpdate(summary) }, 'XSOAR refuses notes in this closed incident; the change is logged here instead');
    }
    await state.set(sessionId, { noteSent: seq });
    return true;
  }

  /** Loads the incident; a 404 means it was deleted in XSOAR, which no retry can fix. */
  private async load(sessionId: string, incidentId: string, signal: AbortSignal | undefined): Promise<LoadedIncident> {
    try {
      return await this.opts.updates.load(incidentId, signal);
    } catch (err) {
      if (err instanceof XsoarRejectedError && (err.statusCode === 404 || /not (be )?found|could not find|does not exist/i.test(err.detail))) {
        throw new IncidentGoneError(sessionId, incidentId, `HTTP ${err.statusCode} ${err.detail}`);
      }
      throw err;
    }
  }
}
