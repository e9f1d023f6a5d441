import { DelayedError, RateLimitError, UnrecoverableError, Worker, type Job, type Queue } from 'bullmq';
import type { RedisConnection } from '../infra/redis.js';
import { ForwarderError, type FailureClass, type Upstream } from '../infra/errors.js';
import type { Logger } from '../infra/logger.js';
import { withTimeout } from '../infra/timeout.js';
import type { CircuitBreaker } from '../guard/circuit-breaker.js';
import type { RedisMemoryGuard } from '../guard/redis-memory.js';
import type { UpstreamStatus } from '../guard/upstream-status.js';
import { FailureLog } from './failure-log.js';
import { outcomeOf } from './outcome.js';

/**
 * Every worker's own rate limit: high enough never to limit by itself (it is there so queue.rateLimit()
 * works). A queue pause sets the limiter's count far above it, which is how a pause is told apart.
 */
export const LIMITER_MAX = 100_000;

/** Thrown by a processor that must not go on because the daemon is stopping: the job goes back untouched. */
export class HandBackError extends ForwarderError {
  constructor() {
    super('HAND_BACK', 'the daemon is stopping; the job goes back to the queue');
  }
}

/** What a job's processor gets besides the job. */
export interface JobContext {
  /** The job's lock token (ownership checks, moving the job to the delayed set). */
  token: string | undefined;
  /** Aborted when the job is cancelled (shutdown). */
  signal: AbortSignal | undefined;
  /** A child logger whose lines carry the alert id, the job id and the attempt. */
  log: Logger;
  /** True once the daemon is stopping: nothing new may start (throw HandBackError). */
  stopping(): boolean;
}

export interface JobWorkerEvents {
  /** A failure, by reason class; `final` when the job went to the failed set. */
  onFailed?(failure: FailureClass, final: boolean): void;
  /** An upstream asked to slow down: the queue pauses this long. */
  onRateLimited?(upstream: Upstream, waitMs: number): void;
}

/** What a queue's worker is made of; the guards and BullMQ options come from the runtime. */
export interface JobWorkerSpec<D, R> {
  queue: Queue<D>;
  /** The work in log lines: "forward attempt failed", "incident update attempt failed". */
  noun: string;
  concurrency: number;
  process(job: Job<D>, ctx: JobContext): Promise<R>;
  /** The alert a job is about (every line about it carries it as `alertId`). */
  alertIdOf(job: Job<D>): string;
  /** The line written when a job reaches the failed set. */
  failedMessage: string;
  events?: JobWorkerEvents;
  /** A job completed (its result is kept by BullMQ as the queue's options say). */
  onCompleted?(job: Job<D>, result: R): void;
  /** Words appended to a retry line for a failure with these facts (", searching XSOAR first"). */
  retryHint?(maybeSent: boolean): string;
}

/** The guards every worker shares (one instance each per process), and the runtime's settings. */
export interface JobWorkerGuards {
  connection: RedisConnection;
  prefix: string;
  logger: Logger;
  status: UpstreamStatus;
  breaker: CircuitBreaker;
  memory: RedisMemoryGuard;
  /** A crashed process's jobs are taken over after about this long. */
  lockDurationMs: number;
  /** How long a queue pauses while an upstream refuses our credentials. */
  authPauseMs: number;
  shuttingDown: () => boolean;
  clock: () => number;
}

/**
 * A BullMQ worker with the guarantees every queue shares: an open circuit or refused credentials pause
 * the queue without spending attempts, a full Redis hands the job back and pauses this process, a job
 * cancelled at shutdown goes back untouched, a session's own fault spends attempts and then lands in the
 * failed set with its reason, and every failure is one log line saying what happens next.
 */
export class JobWorker<D, R> {
  private worker: Worker<D, R> | undefined;
  private readonly running = new Set<Promise<unknown>>();
  private readonly failureLog: FailureLog;
  private lastAuthLog: number | undefined;

  constructor(
    private readonly spec: JobWorkerSpec<D, R>,
    private readonly guards: JobWorkerGuards,
  ) {
    this.failureLog = new FailureLog({ logger: guards.logger, clock: guards.clock });
  }

  get queue(): Queue<D> {
    return this.spec.queue;
  }

  start(): void {
    const { connection, prefix, lockDurationMs, logger, memory } = this.guards;
    const worker = new Worker<D, R>(this.spec.queue.name, (job, token, signal) => this.track(this.run(job, token, signal)), {
      connection,
      prefix,
      concurrency: this.spec.concurrency,
      // Required for queue.rateLimit() to take effect; high enough never to limit by itself.
      limiter: { max: LIMITER_MAX, duration: 1_000 },
      // A crash of this process is not the job's fault: let it be picked up again many times.
      maxStalledCount: 10,
      lockDuration: lockDurationMs,
      stalledInterval: lockDurationMs,
    });
    worker.on('error', (err) => {
      // BullMQ's own writes (taking the next job) meet a full Redis first.
      if (outcomeOf(err).action === 'redis-full') void memory.refused(err.message);
      logger.error({ err, queue: this.spec.queue.name }, `${this.spec.noun} worker error`);
    });
    worker.on('failed', (job, err) => {
      if (!job) return;
      const final = err instanceof UnrecoverableError || job.attemptsMade >= (job.opts.attempts ?? 1);
      if (final) logger.error({ alertId: this.spec.alertIdOf(job), jobId: job.id, queue: this.spec.queue.name, attempts: job.attemptsMade, reason: err.message }, this.spec.failedMessage);
    });
    const onCompleted = this.spec.onCompleted;
    if (onCompleted) worker.on('completed', (job, result) => onCompleted(job, result));
    this.worker = worker;
  }

  /** The BullMQ worker, for listeners (undefined before start). */
  get bullWorker(): Worker<D, R> | undefined {
    return this.worker;
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
    this.worker?.resume();
  }

  /** Aborts the in-flight requests of running jobs; they go back to the queue. */
  cancelAll(reason: string): void {
    this.worker?.cancelAllJobs(reason);
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

  private track<T>(p: Promise<T>): Promise<T> {
    this.running.add(p);
    const forget = (): void => void this.running.delete(p);
    p.then(forget, forget);
    return p;
  }

  private async run(job: Job<D>, token: string | undefined, signal: AbortSignal | undefined): Promise<R> {
    const { breaker, shuttingDown } = this.guards;
    const log = this.guards.logger.child({ alertId: this.spec.alertIdOf(job), jobId: job.id, attempt: job.attemptsMade + 1 });
    // An upstream is down: wait for its probe instead of spending this job's attempt on it.
    if (breaker.isOpen()) throw await this.pauseQueue(breaker.pauseLeftMs() + 100);
    // Stopping: nothing new starts (the job goes back untouched for another process).
    if (shuttingDown() && token) throw await this.handBack(job, token, log);
    try {
      return await this.spec.process(job, { token, signal, log, stopping: shuttingDown });
    } catch (err) {
      const stopped = err instanceof HandBackError || (signal?.aborted && shuttingDown() && !(err instanceof DelayedError));
      if (stopped && token) throw await this.handBack(job, token, log);
      throw await this.outcome(err, job, log);
    }
  }

  /** Stopped mid-job: hand it back untouched (an interrupted create stays marked in flight). */
  private async handBack(job: Job<D>, token: string, log: Logger): Promise<DelayedError> {
    await job.moveToDelayed(this.guards.clock() + 1_000, token).catch(() => undefined);
    log.info('handed back to the queue at shutdown');
    return new DelayedError();
  }

  /** Carries out the outcome table for one failure; returns what to throw to BullMQ. */
  private async outcome(err: unknown, job: Job<D>, log: Logger): Promise<Error> {
    const { events } = this.spec;
    const o = outcomeOf(err);
    switch (o.action) {
      case 'as-thrown':
        return o.error;
      case 'redis-full':
        // A full Redis is the deployment's condition: hand the job back (no attempt) and stop taking jobs
        // here until Redis accepts writes. No queue-wide pause: that would itself be a refused write.
        await this.guards.memory.refused(o.reason);
        log.debug({ err }, 'Redis refused a write for memory; handed back without using an attempt');
        events?.onFailed?.('redis_full', false);
        return new RateLimitError();
      case 'pause': {
        const upstream = o.facts.upstream ?? 'xsoar';
        if (o.facts.nature === 'throttled') {
          const ms = o.facts.retryAfterMs ?? 1_000;
          log.warn({ retryAfterMs: ms, upstream }, `${upstream === 'xsoar' ? 'XSOAR' : 'Code42'} answered 429; pausing the queue`);
          events?.onRateLimited?.(upstream, ms);
          return this.pauseQueue(ms);
        }
        const pause = this.guards.authPauseMs;
        // One error line per pause, not one per job.
        if (this.guards.status.markAuthFailure(upstream, o.reason) || this.guards.clock() - (this.lastAuthLog ?? 0) > pause) {
          this.lastAuthLog = this.guards.clock();
          log.error({ upstream, pauseMs: pause }, o.reason);
        }
        events?.onFailed?.('auth', false);
        return this.pauseQueue(pause);
      }
      case 'fail':
        events?.onFailed?.(o.facts.failure, true);
        return new UnrecoverableError(o.reason);
      case 'outage':
        if (await this.guards.breaker.recordFailure(o.facts.upstream, o.reason)) {
          // The line about the outage comes from the breaker (once per opening), not from each job.
          log.debug({ err }, 'upstream down; handed back without using an attempt');
          events?.onFailed?.('upstream_down', false);
          return new RateLimitError();
        }
        break;
      case 'retry':
        break;
    }
    const { facts, reason } = o;
    const attempts = job.opts.attempts ?? 1;
    const final = job.attemptsMade + 1 >= attempts;
    const failure: FailureClass = facts.failure;
    events?.onFailed?.(failure, final);
    log.debug({ err }, `${this.spec.noun} attempt failed`);
    if (!final) {
      // One line per failure: the reason and what happens next. The final attempt says nothing here:
      // the 'failed' listener writes the one line about the failed set.
      const retryInMs = nextBackoffMs(job);
      const hint = this.spec.retryHint?.(facts.maybeSent === true) ?? '';
      this.failureLog.log(
        'warn',
        `${failure}:${reason}`,
        this.spec.alertIdOf(job),
        { jobId: job.id, queue: this.spec.queue.name, attempt: job.attemptsMade + 1, attempts, reason, retryInMs, ...(facts.maybeSent ? { ambiguous: true } : {}) },
        `${this.spec.noun} attempt failed (${reason}); will retry in about ${formatMs(retryInMs)}${hint}`,
        (count, seconds) => `${count} more ${this.spec.noun} attempts failed the same way in ${seconds} s (${reason}); each has attempts left and will be retried`,
      );
    }
    return err instanceof Error ? err : new Error(String(err));
  }

  /** Pauses the whole queue (not just this job) and tells BullMQ to put the job back without an attempt. */
  private async pauseQueue(ms: number): Promise<RateLimitError> {
    await this.spec.queue.rateLimit(Math.max(1, Math.ceil(ms))).catch((e: unknown) => this.guards.logger.warn({ err: e }, 'could not pause the queue'));
    return new RateLimitError();
  }
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
