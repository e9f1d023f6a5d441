/**
 * Session → incident. The BullMQ worker of the update queue: for each session with a pending change,
 * load its incident, overwrite only what the daemon owns, add one war-room note saying what changed,
 * and carry a close made in Incydr over to XSOAR. A closed incident gets the note only, and is reopened
 * only when the session went to OPEN_NEW_DATA (REOPEN_ON_NEW_DATA).
 */
import { RateLimitError, UnrecoverableError, Worker, type Job, type Queue } from 'bullmq';
import type { Redis } from 'ioredis';
import { Code42AuthError, Code42ResponseError } from '../code42/errors.js';
import type { IncydrClient } from '../code42/incydr-client.js';
import { currentSeverity, currentState, latestState, type FileEvent, type Session } from '../code42/schemas.js';
import type { Logger } from '../infra/logger.js';
import type { Ledger } from '../forward/ledger.js';
import type { SessionEnricher } from '../forward/session-enricher.js';
import { eventsWorthKeeping } from '../xsoar/body-budget.js';
import { XsoarAuthError, XsoarRateLimitedError, XsoarRejectedError } from '../xsoar/errors.js';
import { MappingError, mapSessionToIncident, type MappingOptions } from '../xsoar/incident-mapper.js';
import type { IncidentRequest } from '../xsoar/incident-request.js';
import { INCIDENT_STATUS, ZERO_TIME, isClosedInvestigation, type IncidentPatch, type IncidentUpdates, type LoadedIncident } from '../xsoar/incident-updates.js';
import { closeReasonForState, isClosedState } from './close-reasons.js';
import { closedInIncydrNotes, describeUpdate, hasNews, noteMarker, updateNote, type UpdateSummary } from './notes.js';
import type { SyncMetrics } from './sync-metrics.js';
import type { ClaimedChange, SessionSyncRecord, SyncState } from './sync-state.js';
import { UPDATE_QUEUE, type UpdateJobData, type UpdateSink } from './update-queue.js';

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
  connection: Redis;
  prefix: string;
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
  lockDurationMs?: number;
  /** How long the queue pauses while an upstream refuses our credentials. @defaultValue 60000 */
  authPauseMs?: number;
  clock?: () => number;
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
  private worker: Worker<UpdateJobData> | undefined;
  private readonly clock: () => number;

  constructor(private readonly opts: IncidentUpdaterOptions) {
    this.clock = opts.clock ?? Date.now;
  }

  start(): void {
    const { connection, prefix, concurrency, logger } = this.opts;
    this.worker = new Worker<UpdateJobData>(UPDATE_QUEUE, (job, token, signal) => this.process(job, signal), {
      connection,
      prefix,
      concurrency,
      limiter: { max: 100_000, duration: 1_000 },
      maxStalledCount: 10,
      lockDuration: this.opts.lockDurationMs ?? 30_000,
      stalledInterval: this.opts.lockDurationMs ?? 30_000,
    });
    this.worker.on('error', (err) => logger.error({ err }, 'update worker error'));
    this.worker.on('failed', (job, err) => {
      if (!job) return;
      const final = err instanceof UnrecoverableError || job.attemptsMade >= (job.opts.attempts ?? 1);
      if (final) logger.error({ alertId: job.data.sessionId, jobId: job.id, attempts: job.attemptsMade, reason: err.message }, 'incident update moved to the failed set');
    });
    // A change that arrived in the instant between the job's last claim and its removal.
    this.worker.on('completed', (job) => {
      void this.opts.state
        .pending(job.data.sessionId)
        .then((p) => (p ? this.opts.sink.enqueue(job.data.sessionId) : undefined))
        .catch((err: unknown) => logger.warn({ err, alertId: job.data.sessionId }, 'could not check for a late change (the periodic sweep will)'));
    });
  }

  async close(force = false): Promise<void> {
    await this.worker?.close(force);
  }

  private async process(job: Job<UpdateJobData>, signal: AbortSignal | undefined): Promise<{ applied: number }> {
    const sessionId = typeof job.data?.sessionId === 'string' ? job.data.sessionId : '';
    if (!sessionId) {
      this.opts.metrics.failure('invalid_input', true);
      throw new UnrecoverableError('invalid update job data: field sessionId: missing');
    }
    const log = this.opts.logger.child({ alertId: sessionId, jobId: job.id, attempt: job.attemptsMade + 1 });
    let applied = 0;
    try {
      // Changes that arrive while this runs are claimed by the same run, in order.
      for (let change = await this.opts.state.claim(sessionId); change; change = await this.opts.state.claim(sessionId)) {
        await this.apply(change, log, signal);
        applied += 1;
      }
      return { applied };
    } catch (err) {
      throw await this.outcome(err, job, log);
    }
  }

  private async apply(change: ClaimedChange, log: Logger, signal: AbortSignal | undefined): Promise<void> {
    const { state, updates, policy, metrics } = this.opts;
    const { sessionId, session, previous, seq } = change;
    const incidentId = await this.opts.ledger.incidentFor(sessionId);
    if (!incidentId) throw new Error(`session ${sessionId} has no incident in the ledger yet (its create may still be queued); will retry`);
    const record = await state.get(sessionId);

    const latest = latestState(session.states);
    const newState = currentState(session) ?? previous.state;
    // An untimed state entry: when the change was noticed is the best time there is.
    const closedAt = latest?.sourceTimestamp ?? change.detectedAt;
    const stateChanged = newState !== previous.state;
    // The daemon's own change-state coming back through the poller is nobody's news.
    const ownState = stateChanged && record.wroteCode42State === newState;
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

    let incident = await updates.load(incidentId, signal);
    const wasClosed = incident.status === INCIDENT_STATUS.done;
    const reopen = wasClosed && policy.reopenOnNewData && stateChanged && newState === 'OPEN_NEW_DATA';
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

    if (closedInIncydr && policy.closeInXsoar && incident.status !== INCIDENT_STATUS.done && latest) {
      const reason = closeReasonForState(newState, policy.stateCloseReasons);
      const closed = await updates.close(incidentId, reason, closedInIncydrNotes(newState, latest.userId || 'an Incydr user', closedAt), signal);
      done.xsoarClosedByDaemon = closed.closed ?? '';
      metrics.close('to-xsoar');
      what.push(`closed as ${reason}`);
      log.info({ incidentId, state: newState, closeReason: reason }, 'session closed in Incydr; incident closed');
    }

    if (ownState) metrics.update('own');
    else if (what.length === 0) metrics.update('unchanged');
    else metrics.update(wasClosed && !reopen ? 'noted' : 'applied');
    await state.countCode42Calls(sessionId, code42Calls);
    await state.finish(sessionId, seq, {
      ...done,
      ...(what.length > 0 ? { lastToXsoar: this.clock(), lastToXsoarWhat: `${what.join(', ')}: ${describeUpdate(summary) || 'no visible change'}` } : {}),
    });
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

  /** Turns a failure into what BullMQ should do with the job (as the forward worker does). */
  private async outcome(err: unknown, job: Job, log: Logger): Promise<Error> {
    const { queue, metrics } = this.opts;
    if (err instanceof XsoarRateLimitedError) {
      await queue.rateLimit(Math.max(1, err.retryAfterMs)).catch(() => undefined);
      return new RateLimitError();
    }
    if (err instanceof XsoarAuthError || err instanceof Code42AuthError) {
      log.error({ pauseMs: this.opts.authPauseMs ?? 60_000 }, err.message);
      metrics.failure('auth', false);
      await queue.rateLimit(this.opts.authPauseMs ?? 60_000).catch(() => undefined);
      return new RateLimitError();
    }
    if (err instanceof XsoarRejectedError || err instanceof MappingError || err instanceof Code42ResponseError) {
      metrics.failure(err instanceof XsoarRejectedError ? 'xsoar_rejected' : 'invalid_input', true);
      return new UnrecoverableError(err.message);
    }
    const final = job.attemptsMade + 1 >= (job.opts.attempts ?? 1);
    metrics.failure('transient', final);
    log.warn({ err }, 'incident update failed; will retry');
    return err instanceof Error ? err : new Error(String(err));
  }
}
