import { DelayedError, UnrecoverableError, type Job, type Queue } from 'bullmq';
import type { Logger } from '../infra/logger.js';
import type { Session } from '../code42/schemas.js';
import { mapWithinBudget } from '../xsoar/body-budget.js';
import type { Enrichment, MappingOptions } from '../xsoar/incident-mapper.js';
import type { FoundIncident, XsoarClient } from '../xsoar/xsoar-client.js';
import type { FailureClass, Upstream } from '../infra/errors.js';
import { HandBackError, type JobContext } from '../jobs/job-worker.js';
import type { JobRuntime } from '../jobs/runtime.js';
import { parseForwardJobData, type ForwardJobData } from './job-data.js';
import { afterFailedCreate, firstStep, markFromTheFuture, searchVerdict } from './create-once.js';
import type { CreateMark, Ledger } from './ledger.js';
import { WorkGate } from './work-gate.js';
import { releaseHeap } from './heap-release.js';
import { OwnershipLostError } from './ownership.js';
import type { SessionEnricher } from './session-enricher.js';
import type { UpstreamStatus } from '../guard/upstream-status.js';

export type { FailureClass };

/** What a forward job returns (kept with the completed job). */
export interface ForwardResult {
  /** Null when XSOAR accepted the create without saying which incident it made (`via: 'accepted'`). */
  incidentId: string | null;
  /**
   * How the incident id was obtained: created; search (an earlier create whose outcome was unknown had
   * succeeded); resolved (XSOAR accepted the create without the id, a search found it); ledger (already done);
   * accepted (XSOAR accepted the create without the id: forwarded, the id is looked up apart by the IdResolver).
   */
  via: 'created' | 'ledger' | 'search' | 'resolved' | 'accepted';
}

/** Failed-set reason of a create XSOAR accepted (2xx) but stored nowhere a search finds within the settle window. */
export const NOT_STORED_REASON = 'accepted by XSOAR but no incident stored (pre-process rule?)';

export interface ForwardWorkerEvents {
  /** visibleAt: when the poller read the session from Code42 (epoch ms). */
  onForwarded?(result: ForwardResult, durationMs: number, visibleAt?: number): void;
  onFailed?(failure: FailureClass, final: boolean): void;
  onRateLimited?(upstream: Upstream, waitMs: number): void;
  /** XSOAR accepted a create but no incident was found within the settle window. */
  onNotStored?(): void;
  /** A job was taken over by another process before this one created anything. */
  onOwnershipLost?(): void;
}

/** What the worker learns from a detector of lost Redis state. */
export interface StateLossCheck {
  /**
   * When Redis may have lost a record of this session (its data was lost, or this is a first start), the
   * moment from which a search must look for its incident; null when the ledger can be trusted.
   */
  doubtFor(session: Session): Promise<CreateMark | null>;
}

export interface ForwardWorkerOptions {
  /** The runtime the worker runs on (guards, failed set, shutdown). */
  runtime: JobRuntime;
  /** The forward queue. */
  queue: Queue;
  /** The Redis key prefix (the job lock keys live under it). */
  prefix: string;
  concurrency: number;
  ledger: Ledger;
  enricher: SessionEnricher;
  xsoar: XsoarClient;
  mapping: MappingOptions;
  status: UpstreamStatus;
  logger: Logger;
  events?: ForwardWorkerEvents;
  /**
   * How long XSOAR's search may lag a create: after an unknown outcome (or a create accepted without an id),
   * XSOAR is searched for this long before the incident counts as not created. @defaultValue 10000
   */
  searchSettleMs?: number;
  /** Detector of lost Redis state: sessions it doubts are searched in XSOAR before any create. */
  stateLoss?: StateLossCheck;
  /**
   * Sessions with at least `events` file events kept are mapped and created at most `parallel` at a time in this
   * process (their create bodies are several MB each), and each is followed by a full garbage collection.
   * @defaultValue 200 events, 1 at a time
   */
  largeCreates?: { events: number; parallel: number };
  clock?: () => number;
}

/**
 * The forward queue's work: for each session, check the ledger, enrich, map, create the XSOAR incident
 * exactly once, record it. What a failure means (a pause, an attempt, the failed set) is the job
 * runtime's outcome table, shared with every other queue.
 */
export class ForwardWorker {
  private readonly clock: () => number;
  private readonly largeCreateGate: WorkGate;

  constructor(private readonly opts: ForwardWorkerOptions) {
    this.clock = opts.clock ?? Date.now;
    this.largeCreateGate = new WorkGate(opts.largeCreates?.parallel ?? 1);
    opts.runtime.worker<unknown, ForwardResult>({
      queue: opts.queue,
      noun: 'forward',
      concurrency: opts.concurrency,
      process: (job, ctx) => this.process(job, ctx),
      alertIdOf: sessionOf,
      failedMessage: 'session moved to the failed set',
      ...(opts.events ? { events: opts.events } : {}),
      retryHint: (maybeSent) => (maybeSent ? ', searching XSOAR first' : ''),
    });
  }

  private async process(job: Job, ctx: JobContext): Promise<ForwardResult> {
    const started = this.clock();
    let data: ForwardJobData;
    try {
      data = parseForwardJobData(job.data);
    } catch (err) {
      this.opts.events?.onFailed?.('invalid_input', true);
      throw new UnrecoverableError(`invalid job data: ${(err as Error).message}`);
    }
    try {
      const result = await this.forward(data, job, ctx);
      this.opts.events?.onForwarded?.(result, this.clock() - started, data.polledAt);
      return result;
    } catch (err) {
      if (err instanceof OwnershipLostError) {
        // Another process owns the job now (this one was frozen past its lock): leave the job to it.
        ctx.log.warn('lost the job to another process before creating; stopping without creating');
        this.opts.events?.onOwnershipLost?.();
        throw new DelayedError();
      }
      throw err;
    }
  }

  private async forward(data: ForwardJobData, job: Job, ctx: JobContext): Promise<ForwardResult> {
    const { ledger } = this.opts;
    const { token, signal, log } = ctx;
    const { sessionId, session } = data;

    const entry = await ledger.lookup(sessionId);
    const first = firstStep(entry, this.clock(), this.settleMs);
    switch (first.step) {
      case 'done':
        log.info({ incidentId: first.incidentId }, 'session already forwarded (ledger); nothing to do');
        return { incidentId: first.incidentId, via: 'ledger' };
      case 'await-id':
        // XSOAR accepted a create already: never create again; the id is looked up apart.
        await ledger.awaitId(sessionId, first.accepted);
        log.info('XSOAR accepted this session earlier; its id is looked up apart');
        return { incidentId: null, via: 'accepted' };
      case 'resolve-accepted':
        // The lookup found nothing within the settle window: one more search decides, the id or the failed set.
        return this.resolveAccepted(sessionId, first.accepted, job, token, signal, log);
      case 'search-first': {
        const moved = markFromTheFuture(first.since, this.clock());
        if (moved) await ledger.markInFlight(sessionId, moved);
        const found = await this.recoverEarlierCreate(sessionId, moved ?? first.since, job, token, signal, log);
        if (found) return found;
        break;
      }
      case 'create':
        break;
    }

    const enrichment = await this.opts.enricher.enrich(session);
    this.opts.status.markOk('code42');
    // A session with many file events makes a create body of several MB: one at a time per process, and its
    // garbage collected right after (V8 would otherwise let several such creates pile up; see heap-release.ts).
    const create = (): Promise<ForwardResult> => this.mapAndCreate(data, first.step === 'create' && first.checkStateLoss, enrichment, job, ctx);
    if (enrichment.events.length < (this.opts.largeCreates?.events ?? 200)) return create();
    return this.largeCreateGate.run(async () => {
      try {
        return await create();
      } finally {
        releaseHeap();
      }
    });
  }

  /** Maps the enriched session within the body budget, creates the incident and records the outcome. */
  private async mapAndCreate(data: ForwardJobData, checkStateLoss: boolean, enrichment: Enrichment, job: Job, ctx: JobContext): Promise<ForwardResult> {
    const { ledger, xsoar, mapping } = this.opts;
    const { token, signal, log } = ctx;
    const { sessionId, session } = data;
    const { incident, body, bytes, eventsShown } = mapWithinBudget(session, enrichment, mapping);

    // Redis lost its records (or this is a start without them): an older session may be in XSOAR already. Asked
    // after enrichment, so the search has the incident's name too.
    if (checkStateLoss && this.opts.stateLoss) {
      const doubt = await this.opts.stateLoss.doubtFor(session);
      if (doubt) {
        const found = await this.recoverEarlierCreate(sessionId, { at: doubt.at, name: incident.name }, job, token, signal, log);
        if (found) return found;
      }
    }

    // Stopping: no create starts after the daemon said so (the job goes back untouched).
    if (ctx.stopping()) throw new HandBackError();
    const mark: CreateMark = { at: this.clock(), name: incident.name };
    const lockKey = `${this.opts.prefix}:${this.opts.queue.name}:${String(job.id)}:lock`;
    // Ownership: the session is claimed with this job's lock token, and the claim is verified again just before
    // the request leaves; a process whose lock was taken over while it was frozen stops here.
    if (token) {
      if (!(await ledger.claim(sessionId, lockKey, token, mark))) throw new OwnershipLostError(sessionId);
    } else {
      await ledger.markInFlight(sessionId, mark);
    }
    const stillMine = token
      ? async (): Promise<void> => {
          if (!(await ledger.owns(lockKey, token))) throw new OwnershipLostError(sessionId);
        }
      : undefined;
    const createStarted = this.clock();
    let id: string | null;
    try {
      ({ id } = await xsoar.createIncident(body, signal, stillMine));
    } catch (err) {
      if (err instanceof OwnershipLostError) throw err;
      // Only a create that certainly did not happen may clear the mark; any other outcome keeps it (its time
      // moved to the end of this attempt, when the incident may have been stored at the latest), so the next
      // attempt searches first. (A failed search must never clear it.)
      if (afterFailedCreate(err) === 'clear-mark') await ledger.clearInFlight(sessionId);
      else await ledger.markInFlight(sessionId, { ...mark, at: this.clock() }).catch(() => undefined);
      throw err;
    }
    this.opts.status.markOk('xsoar');
    const facts = { severity: incident.severity, fileEvents: enrichment.eventsTotal, fileEventsShown: eventsShown, bodyBytes: bytes, durationMs: this.clock() - createStarted };
    if (id !== null) {
      await ledger.record(sessionId, id);
      log.info({ incidentId: id, ...facts }, 'incident created');
      return { incidentId: id, via: 'created' };
    }
    // A 2xx is a create: recorded as forwarded at once, id or not. The id is looked up apart (IdResolver, many
    // sessions per search), so this slot is free for the next create instead of waiting out the index lag.
    const accepted: CreateMark = { at: this.clock(), name: incident.name };
    await ledger.markAccepted(sessionId, accepted);
    log.info(facts, 'XSOAR accepted the incident without its id; its id is looked up apart');
    return { incidentId: null, via: 'accepted' };
  }

  /** Searches for an incident an earlier create may have made; records it when found. */
  private async recoverEarlierCreate(
    sessionId: string,
    since: CreateMark,
    job: Job,
    token: string | undefined,
    signal: AbortSignal | undefined,
    log: Logger,
  ): Promise<ForwardResult | null> {
    const incidentId = await this.searchSettled(sessionId, since, job, token, signal);
    if (incidentId === null) {
      log.info({ settleMs: this.settleMs }, 'earlier create did not reach XSOAR; creating');
      return null;
    }
    await this.opts.ledger.record(sessionId, incidentId);
    log.info({ incidentId }, 'earlier create had reached XSOAR; recorded it instead of creating again');
    return { incidentId, via: 'search' };
  }

  private get settleMs(): number {
    return this.opts.searchSettleMs ?? 10_000;
  }

  /**
   * Searches XSOAR for the session's incident after a create whose outcome is unknown. Resolves with its id, or
   * null once a search that began a full settle window after `since` found nothing (not created); in between,
   * the job waits in the delayed set and searches again.
   */
  private async searchSettled(sessionId: string, since: CreateMark, job: Job, token: string | undefined, signal: AbortSignal | undefined): Promise<string | null> {
    const searchStartedAt = this.clock();
    const found = await this.opts.xsoar.findIncidentsForSession(sessionId, this.opts.mapping.incidentType, signal, { name: since.name ?? undefined });
    this.opts.status.markOk('xsoar');
    const verdict = searchVerdict({ found: (found[0] as FoundIncident | undefined)?.id ?? null, searchStartedAt, since, settleMs: this.settleMs, now: this.clock() });
    if (verdict.verdict === 'found') return verdict.incidentId;
    if (verdict.verdict === 'search-again') {
      // Back to the delayed set until the next search, without spending an attempt.
      if (!token) throw new Error(`XSOAR search index may lag; searching again in ${verdict.at - this.clock()} ms`);
      await job.moveToDelayed(verdict.at, token);
      throw new DelayedError();
    }
    return null;
  }

  /** The session is forwarded; find its incident id, or report that XSOAR stored nothing. */
  private async resolveAccepted(
    sessionId: string,
    accepted: CreateMark,
    job: Job,
    token: string | undefined,
    signal: AbortSignal | undefined,
    log: Logger,
  ): Promise<ForwardResult> {
    const incidentId = await this.searchSettled(sessionId, accepted, job, token, signal);
    if (incidentId !== null) {
      await this.opts.ledger.record(sessionId, incidentId);
      log.info({ incidentId }, 'incident id found by search after XSOAR accepted the create without it');
      return { incidentId, via: 'resolved' };
    }
    // Never created again: the operator sees it in the failed set (a retry searches once more, it never creates).
    await this.opts.ledger.stopAwaitingId(sessionId);
    this.opts.events?.onNotStored?.();
    this.opts.events?.onFailed?.('not_stored', true);
    log.warn({ settleMs: this.settleMs }, NOT_STORED_REASON);
    throw new UnrecoverableError(NOT_STORED_REASON);
  }
}

function sessionOf(job: Job): string {
  const data = job.data as { sessionId?: unknown } | undefined;
  return typeof data?.sessionId === 'string' ? data.sessionId : String(job.id);
}
