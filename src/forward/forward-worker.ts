import { DelayedError, RateLimitError, UnrecoverableError, Worker, type Job, type Queue } from 'bullmq';
import type { Redis } from 'ioredis';
import { Code42AuthError, Code42ResponseError } from '../code42/errors.js';
import type { Logger } from '../infra/logger.js';
import type { Session } from '../code42/schemas.js';
import { mapWithinBudget } from '../xsoar/body-budget.js';
import { MappingError, type MappingOptions } from '../xsoar/incident-mapper.js';
import { XsoarAuthError, XsoarRateLimitedError, XsoarRejectedError, XsoarUnavailableError } from '../xsoar/errors.js';
import type { FoundIncident, XsoarClient } from '../xsoar/xsoar-client.js';
import { parseForwardJobData, type ForwardJobData } from './job-data.js';
import { FORWARD_QUEUE } from '../store/keys.js';
import type { CreateMark, Ledger } from './ledger.js';
import { OwnershipLostError } from './ownership.js';
import type { SessionEnricher } from './session-enricher.js';
import type { Upstream, UpstreamStatus } from '../guard/upstream-status.js';
import { transientUpstream, type CircuitBreaker } from '../guard/circuit-breaker.js';
import { isRedisOomError, type RedisMemoryGuard } from '../guard/redis-memory.js';
import { FailureLog } from '../jobs/failure-log.js';
import { withTimeout } from '../infra/timeout.js';

/**
 * The worker's own rate limit: high enough never to limit by itself (it is there so queue.rateLimit()
 * works). A queue pause sets the limiter's count far above it, which is how a pause is told apart.
 */
export const LIMITER_MAX = 100_000;

/** What a forward job returns (kept with the completed job). */
export interface ForwardResult {
  incidentId: string;
  /**
   * How the incident id was obtained: created; search (an earlier create whose outcome was unknown had
   * succeeded); resolved (XSOAR accepted the create without the id, a search found it); ledger (already done).
   */
  via: 'created' | 'ledger' | 'search' | 'resolved';
}

/** Reason classes for failed jobs and metrics. */
export type FailureClass = 'invalid_input' | 'xsoar_rejected' | 'auth' | 'transient' | 'unknown' | 'not_stored' | 'upstream_down' | 'redis_full';

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
  /** Connection for the worker; BullMQ duplicates it for blocking reads. */
  connection: Redis;
  prefix: string;
  concurrency: number;
  /** The forward queue itself: rate limiting pauses it. */
  queue: Queue;
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
  /** How long the queue pauses while an upstream refuses our credentials. @defaultValue 60000 */
  authPauseMs?: number;
  /**
   * How long a job's lock lives without renewal; a crashed process's jobs are picked up again after
   * about this long. @defaultValue 30000
   */
  lockDurationMs?: number;
  /** Detector of lost Redis state: sessions it doubts are searched in XSOAR before any create. */
  stateLoss?: StateLossCheck;
  /** Pauses the queue without spending attempts while an upstream is down (absent: every failure spends one). */
  breaker?: CircuitBreaker;
  /** Pauses this process while Redis refuses writes for memory. */
  memory?: RedisMemoryGuard;
  /** True once the daemon is stopping: a job aborted then is handed back without using an attempt. */
  shuttingDown?: () => boolean;
  clock?: () => number;
}

/**
 * The BullMQ worker of the forward queue: for each session, check the ledger, enrich, map, create the
 * XSOAR incident, record it. Every failure becomes a BullMQ outcome here, in one place:
 * bad input and XSOAR 400 → failed set at once (UnrecoverableError), XSOAR 429 or bad credentials →
 * the queue pauses without burning attempts (RateLimitError), anything transient → retried with backoff.
 */
export class ForwardWorker {
  private worker: Worker | undefined;
  private readonly clock: () => number;
  /** When the last auth-failure line was written (one line per pause, not one per job). */
  private lastAuthLog: number | undefined;
  /** Jobs being processed by this process. */
  private readonly running = new Set<Promise<unknown>>();
  /** Collapses repeated identical failure lines into one line with a count. */
  private readonly failureLog: FailureLog;

  constructor(private readonly opts: ForwardWorkerOptions) {
    this.clock = opts.clock ?? Date.now;
    this.failureLog = new FailureLog({ logger: opts.logger, clock: this.clock });
  }

  start(): void {
    const { connection, prefix, concurrency, logger } = this.opts;
    this.worker = new Worker(FORWARD_QUEUE, (job, token, signal) => this.track(this.process(job, token, signal)), {
      connection,
      prefix,
      concurrency,
      // Required for queue.rateLimit() to take effect; high enough never to limit by itself.
      limiter: { max: LIMITER_MAX, duration: 1_000 },
      // A crash of this process is not the job's fault: let it be picked up again many times.
      maxStalledCount: 10,
      lockDuration: this.opts.lockDurationMs ?? 30_000,
      stalledInterval: this.opts.lockDurationMs ?? 30_000,
    });
    this.worker.on('error', (err) => {
      // BullMQ's own writes (taking the next job) meet a full Redis first.
      if (isRedisOomError(err)) void this.opts.memory?.refused(err.message);
      logger.error({ err }, 'forward worker error');
    });
    this.worker.on('failed', (job, err) => {
      if (!job) return;
      const final = err instanceof UnrecoverableError || job.attemptsMade >= (job.opts.attempts ?? 1);
      if (final) logger.error({ alertId: sessionOf(job), jobId: job.id, attempts: job.attemptsMade, reason: err.message }, 'session moved to the failed set');
    });
  }

  /** Stops taking jobs and waits for the running ones (bounded by the caller). */
  async close(force = false): Promise<void> {
    await this.worker?.close(force);
    this.failureLog.flush();
  }

  /** Stops taking jobs in this process only (writes nothing to Redis); running jobs go on. */
  async pauseLocal(): Promise<void> {
    await this.worker?.pause(true);
  }

  async resumeLocal(): Promise<void> {
    await this.worker?.resume();
  }

  /**
   * Closes at once without waiting for BullMQ's worker to sleep out a queue pause: running jobs are
   * aborted and handed back (bounded by `ms`), then the worker is closed by force.
   */
  async closeNow(reason: string, ms: number): Promise<void> {
    this.worker?.cancelAllJobs(reason);
    await withTimeout(Promise.allSettled([...this.running]), ms, 'handing jobs back').catch(() => undefined);
    await withTimeout(this.worker?.close(true) ?? Promise.resolve(), ms, 'closing the worker').catch(() => undefined);
    this.failureLog.flush();
  }

  /** Keeps the promise of a running job until it settles (closeNow waits for the hand-back). */
  private track<T>(p: Promise<T>): Promise<T> {
    this.running.add(p);
    const forget = (): void => void this.running.delete(p);
    p.then(forget, forget);
    return p;
  }

  /** Aborts the in-flight HTTP requests of running jobs; they go back to the queue. */
  cancelAll(reason: string): void {
    this.worker?.cancelAllJobs(reason);
  }

  private async process(job: Job, token: string | undefined, signal: AbortSignal | undefined): Promise<ForwardResult> {
    const started = this.clock();
    let data: ForwardJobData;
    try {
      data = parseForwardJobData(job.data);
    } catch (err) {
      this.opts.events?.onFailed?.('invalid_input', true);
      throw new UnrecoverableError(`invalid job data: ${(err as Error).message}`);
    }
    const log = this.opts.logger.child({ alertId: data.sessionId, jobId: job.id, attempt: job.attemptsMade + 1 });
    // An upstream is down: wait for its probe instead of spending this job's attempt on it.
    if (this.opts.breaker?.isOpen()) throw await this.pauseQueue(this.opts.queue, this.opts.breaker.pauseLeftMs() + 100);
    try {
      const result = await this.forward(data, job, token, signal, log);
      this.opts.events?.onForwarded?.(result, this.clock() - started, data.polledAt);
      return result;
    } catch (err) {
      if (err instanceof OwnershipLostError) {
        // Another process owns the job now (this one was frozen past its lock): leave the job to it.
        log.warn('lost the job to another process before creating; stopping without creating');
        this.opts.events?.onOwnershipLost?.();
        throw new DelayedError();
      }
      if (signal?.aborted && this.opts.shuttingDown?.() && token) {
        // Stopped mid-job: hand it back untouched (an interrupted create stays marked in flight).
        await job.moveToDelayed(this.clock() + 1_000, token).catch(() => undefined);
        log.info('handed back to the queue at shutdown');
        throw new DelayedError();
      }
      throw await this.outcome(err, job, log);
    }
  }

  private async forward(data: ForwardJobData, job: Job, token: string | undefined, signal: AbortSignal | undefined, log: Logger): Promise<ForwardResult> {
    const { ledger, xsoar, mapping } = this.opts;
    const { sessionId, session } = data;

    const entry = await ledger.lookup(sessionId);
    if (entry.incidentId) {
      log.info({ incidentId: entry.incidentId }, 'session already forwarded (ledger); nothing to do');
      return { incidentId: entry.incidentId, via: 'ledger' };
    }
    // XSOAR accepted a create already: never create again, only look the incident up.
    if (entry.accepted) return this.resolveAccepted(sessionId, entry.accepted, job, token, signal, log);

    // An earlier create whose outcome is unknown: search before anything else.
    if (entry.inFlight) {
      const found = await this.recoverEarlierCreate(sessionId, entry.inFlight, job, token, signal, log);
      if (found) return found;
    }

    const enrichment = await this.opts.enricher.enrich(session);
    this.opts.status.markOk('code42');
    const { incident, body, bytes, eventsShown } = mapWithinBudget(session, enrichment, mapping);

    // Redis lost its records (or this is a start without them): an older session may be in XSOAR already. Asked
    // after enrichment, so the search has the incident's name too.
    if (!entry.inFlight && !entry.forced && this.opts.stateLoss) {
      const doubt = await this.opts.stateLoss.doubtFor(session);
      if (doubt) {
        const found = await this.recoverEarlierCreate(sessionId, { at: doubt.at, name: incident.name }, job, token, signal, log);
        if (found) return found;
      }
    }

    const mark: CreateMark = { at: this.clock(), name: incident.name };
    const lockKey = `${this.opts.prefix}:${FORWARD_QUEUE}:${String(job.id)}:lock`;
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
      if (certainlyNotCreated(err)) await ledger.clearInFlight(sessionId);
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
    // A 2xx is a create: recorded as forwarded at once, id or not; the id is then looked up.
    const accepted: CreateMark = { at: this.clock(), name: incident.name };
    await ledger.markAccepted(sessionId, accepted);
    log.info(facts, 'XSOAR accepted the incident without its id; looking it up');
    return this.resolveAccepted(sessionId, accepted, job, token, signal, log);
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
    const started = this.clock();
    const found = await this.opts.xsoar.findIncidentsForSession(sessionId, this.opts.mapping.incidentType, signal, { name: since.name ?? undefined });
    this.opts.status.markOk('xsoar');
    if (found.length > 0) return (found[0] as FoundIncident).id;
    if (started < since.at + this.settleMs) await this.searchLater(since, job, token);
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
    this.opts.events?.onNotStored?.();
    this.opts.events?.onFailed?.('not_stored', true);
    log.warn({ settleMs: this.settleMs }, NOT_STORED_REASON);
    throw new UnrecoverableError(NOT_STORED_REASON);
  }

  /** Puts the job back in the delayed set until the next search (without spending an attempt). */
  private async searchLater(since: CreateMark, job: Job, token: string | undefined): Promise<never> {
    const now = this.clock();
    const step = Math.max(250, Math.min(2_000, Math.ceil(this.settleMs / 4)));
    const wait = Math.max(1, Math.min(step, since.at + this.settleMs - now));
    if (!token) throw new Error(`XSOAR search index may lag; searching again in ${wait} ms`);
    await job.moveToDelayed(now + wait, token);
    throw new DelayedError();
  }

  /** Turns a failure into what BullMQ should do with the job. */
  private async outcome(err: unknown, job: Job, log: Logger): Promise<Error> {
    const { queue, events } = this.opts;
    if (err instanceof DelayedError || err instanceof RateLimitError || err instanceof UnrecoverableError) return err;

    if (err instanceof XsoarRateLimitedError) {
      log.warn({ retryAfterMs: err.retryAfterMs }, 'XSOAR answered 429; pausing the queue');
      events?.onRateLimited?.('xsoar', err.retryAfterMs);
      return this.pauseQueue(queue, err.retryAfterMs);
    }
    if (err instanceof XsoarAuthError || err instanceof Code42AuthError) {
      const upstream: Upstream = err instanceof XsoarAuthError ? 'xsoar' : 'code42';
      const pause = this.opts.authPauseMs ?? 60_000;
      // One error line per pause, not one per job.
      if (this.opts.status.markAuthFailure(upstream, err.message) || this.clock() - (this.lastAuthLog ?? 0) > pause) {
        this.lastAuthLog = this.clock();
        log.error({ upstream, pauseMs: pause }, err.message);
      }
      events?.onFailed?.('auth', false);
      return this.pauseQueue(queue, pause);
    }
    if (err instanceof XsoarRejectedError) {
      events?.onFailed?.('xsoar_rejected', true);
      return new UnrecoverableError(err.message);
    }
    if (err instanceof MappingError || err instanceof Code42ResponseError) {
      events?.onFailed?.('invalid_input', true);
      return new UnrecoverableError(err.message);
    }
    if (isRedisOomError(err) && this.opts.memory) {
      // A full Redis is the deployment's condition: hand the job back (no attempt) and stop taking jobs
      // here until Redis accepts writes. No queue-wide pause: that would itself be a refused write.
      await this.opts.memory.refused((err as Error).message);
      log.debug({ err }, 'Redis refused a write for memory; handed back without using an attempt');
      events?.onFailed?.('redis_full', false);
      return new RateLimitError();
    }
    const message = err instanceof Error ? err.message : String(err);
    const upstream = transientUpstream(err);
    if (upstream && this.opts.breaker && (await this.opts.breaker.recordFailure(upstream, message))) {
      // The line about the outage comes from the breaker (once per opening), not from each job.
      log.debug({ err }, 'upstream down; handed back without using an attempt');
      events?.onFailed?.('upstream_down', false);
      return new RateLimitError();
    }
    const attempts = job.opts.attempts ?? 1;
    const final = job.attemptsMade + 1 >= attempts;
    const reasonClass: FailureClass = upstream || err instanceof XsoarUnavailableError ? 'transient' : 'unknown';
    events?.onFailed?.(reasonClass, final);
    log.debug({ err }, 'forward attempt failed');
    if (!final) {
      // The session's one line per failure: the reason and what happens next. The final attempt says
      // nothing here: the 'failed' handler writes the one line about the failed set.
      const retryInMs = nextBackoffMs(job);
      const ambiguous = err instanceof XsoarUnavailableError ? err.ambiguous : undefined;
      this.failureLog.log(
        'warn',
        `${reasonClass}:${message}`,
        sessionOf(job),
        { jobId: job.id, attempt: job.attemptsMade + 1, attempts, reason: message, retryInMs, ...(ambiguous ? { ambiguous } : {}) },
        `forward attempt failed (${message}); will retry in about ${formatMs(retryInMs)}${ambiguous ? ', searching XSOAR first' : ''}`,
        (count, seconds) => `${count} more forward attempts failed the same way in ${seconds} s (${message}); each has attempts left and will be retried`,
      );
    }
    return err instanceof Error ? err : new Error(String(err));
  }

  /** Pauses the whole queue (not just this job) and tells BullMQ to put the job back without an attempt. */
  private async pauseQueue(queue: Queue, ms: number): Promise<RateLimitError> {
    await queue.rateLimit(Math.max(1, Math.ceil(ms))).catch((e: unknown) => this.opts.logger.warn({ err: e }, 'could not pause the queue'));
    return new RateLimitError();
  }
}

/** XSOAR's answer proves the create was not carried out. */
function certainlyNotCreated(err: unknown): boolean {
  return (
    err instanceof XsoarRejectedError ||
    err instanceof XsoarRateLimitedError ||
    err instanceof XsoarAuthError ||
    (err instanceof XsoarUnavailableError && !err.ambiguous)
  );
}

/** BullMQ's exponential backoff before the next attempt (without its jitter, which only shortens it). */
function nextBackoffMs(job: Job): number {
  const b = job.opts.backoff;
  const base = typeof b === 'number' ? b : (b?.delay ?? 0);
  return base * 2 ** job.attemptsMade;
}

function formatMs(ms: number): string {
  return ms < 1_000 ? `${Math.round(ms)} ms` : `${Math.round(ms / 100) / 10} s`;
}

function sessionOf(job: Job): string {
  const data = job.data as { sessionId?: unknown } | undefined;
  return typeof data?.sessionId === 'string' ? data.sessionId : String(job.id);
}
