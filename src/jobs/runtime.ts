import { Queue, type JobsOptions } from 'bullmq';
import type { RedisConnection } from '../infra/redis.js';
import type { Logger } from '../infra/logger.js';
import { withTimeout } from '../infra/timeout.js';
import { CircuitBreaker, type CircuitBreakerOptions, type OpenCircuit } from '../guard/circuit-breaker.js';
import { RedisMemoryGuard, type RedisFullState, type RedisMemoryGuardOptions } from '../guard/redis-memory.js';
import type { Upstream, UpstreamStatus } from '../guard/upstream-status.js';
import { JobWorker, LIMITER_MAX, type JobWorkerSpec } from './job-worker.js';
import { outcomeOf } from './outcome.js';
import { ScheduledJob, type ScheduledJobOptions } from './scheduled-job.js';

/** How a queue's jobs are retried and kept. */
export interface RetryPolicy {
  attempts: number;
  /** Delay before the second attempt (ms); doubles with each further attempt. */
  backoffMs: number;
  /** How long completed jobs are kept (ms); 0 removes them at once. */
  keepCompletedMs: number;
}

/**
 * Options of every job of a work queue: retried with exponential backoff and jitter, completed jobs kept
 * for a bounded time and count, failed jobs kept until an operator retries or removes them.
 */
export function jobOptions(policy: RetryPolicy): JobsOptions {
  return {
    attempts: policy.attempts,
    backoff: { type: 'exponential', delay: policy.backoffMs, jitter: 0.5 },
    removeOnComplete: policy.keepCompletedMs > 0 ? { age: Math.max(1, Math.floor(policy.keepCompletedMs / 1000)), count: 100_000 } : true,
    removeOnFail: false,
  };
}

export interface JobRuntimeOptions {
  prefix: string;
  /** Opens a named connection (BullMQ duplicates it for blocking reads); the caller closes it at shutdown. */
  connect(name: string): RedisConnection;
  /** The state connection: schedules and the memory probe use it. */
  redis: RedisConnection;
  logger: Logger;
  status: UpstreamStatus;
  /** A crashed process's jobs are taken over after about this long (WORKER_LOCK_DURATION). */
  lockDurationMs: number;
  /** How long queues pause while an upstream refuses our credentials. @defaultValue 60000 */
  authPauseMs?: number;
  breaker: Omit<CircuitBreakerOptions, 'pause' | 'resume' | 'clock'>;
  memory: Omit<RedisMemoryGuardOptions, 'redis' | 'pause' | 'resume' | 'clock'>;
  clock?: () => number;
}

/**
 * The one job runtime every queue and schedule of the daemon runs on, so each guarantee is written once:
 * - an upstream outage opens its circuit and pauses **every** work queue without spending attempts;
 * - a full Redis hands jobs back and pauses every worker of this process until a probe write succeeds;
 * - refused credentials and 429s pause the queue that met them; a session's own fault spends attempts,
 *   then the failed set keeps it with its reason (see `outcomeOf`);
 * - a dead process's jobs are taken over after WORKER_LOCK_DURATION, its scheduled runs within one lease;
 * - schedules live in Redis and re-create themselves when Redis lost them;
 * - shutdown stops the schedules first, then takes no new job, then lets running jobs finish or hands them back.
 */
export class JobRuntime {
  readonly breaker: CircuitBreaker;
  readonly memory: RedisMemoryGuard;
  private readonly queues: Queue[] = [];
  private readonly workers: Array<JobWorker<never, unknown>> = [];
  private readonly schedules: Array<ScheduledJob<unknown>> = [];
  private stopping = false;
  private readonly clock: () => number;

  constructor(private readonly opts: JobRuntimeOptions) {
    this.clock = opts.clock ?? Date.now;
    const clock = opts.clock ? { clock: opts.clock } : {};
    this.breaker = new CircuitBreaker({
      ...opts.breaker,
      ...clock,
      // BullMQ's queue rate limit lives in Redis: it holds every replica, and spends no attempt.
      pause: async (ms) => void (await Promise.all(this.queues.map((q) => q.rateLimit(Math.max(1, Math.ceil(ms)))))),
      resume: async () => void (await Promise.all(this.queues.map((q) => q.removeRateLimitKey()))),
    });
    this.memory = new RedisMemoryGuard({
      ...opts.memory,
      ...clock,
      redis: opts.redis,
      // Local only: a queue-wide pause is itself a write a full Redis would refuse.
      pause: async () => void (await Promise.all(this.workers.map((w) => w.pauseLocal()))),
      resume: async () => void (await Promise.all(this.workers.map((w) => w.resumeLocal()))),
    });
    opts.status.onOk((upstream) => this.breaker.recordSuccess(upstream));
  }

  get shuttingDown(): boolean {
    return this.stopping;
  }

  /** A work queue: its jobs retried by `policy`, paused with the others while an upstream is down. */
  workQueue<D>(name: string, policy: RetryPolicy): Queue<D> {
    const queue = new Queue<D>(name, { connection: this.opts.connect(`c42x-${name}-queue`), prefix: this.opts.prefix, defaultJobOptions: jobOptions(policy) });
    queue.on('error', (err) => this.opts.logger.debug({ err, queue: name }, 'queue error'));
    this.queues.push(queue as unknown as Queue);
    return queue;
  }

  /** The worker of a work queue, with every guard (see JobWorker). */
  worker<D, R>(spec: JobWorkerSpec<D, R>): JobWorker<D, R> {
    const worker = new JobWorker<D, R>(spec, {
      connection: this.opts.connect(`c42x-${spec.queue.name}-worker`),
      prefix: this.opts.prefix,
      logger: this.opts.logger.child({ component: spec.queue.name }),
      status: this.opts.status,
      breaker: this.breaker,
      memory: this.memory,
      lockDurationMs: this.opts.lockDurationMs,
      authPauseMs: this.opts.authPauseMs ?? 60_000,
      shuttingDown: () => this.stopping,
      clock: this.clock,
    });
    this.workers.push(worker as unknown as JobWorker<never, unknown>);
    return worker;
  }

  /** A periodic run, one per deployment (see ScheduledJob); a refused write of its own reaches the memory guard. */
  scheduled<R>(options: Omit<ScheduledJobOptions<R>, 'redis'>): ScheduledJob<R> {
    const job = new ScheduledJob<R>({
      ...options,
      redis: this.opts.redis,
      events: {
        ...options.events,
        onError: (err) => {
          if (outcomeOf(err).action === 'redis-full') void this.memory.refused(err.message);
          options.events?.onError?.(err);
        },
        onRun: (outcome, ms, result, error) => {
          if (error !== undefined && outcomeOf(error).action === 'redis-full') void this.memory.refused((error as Error).message);
          options.events?.onRun?.(outcome, ms, result, error);
        },
      },
      ...(this.opts.clock ? { clock: this.opts.clock } : {}),
    });
    this.schedules.push(job as ScheduledJob<unknown>);
    return job;
  }

  start(): void {
    for (const w of this.workers) w.start();
    for (const s of this.schedules) s.start();
  }

  /** Re-creates every schedule Redis lost (they would on their own; this makes it immediate). */
  async ensureSchedules(): Promise<void> {
    await Promise.all(this.schedules.map((s) => s.ensure()));
  }

  openCircuits(): Map<Upstream, OpenCircuit> {
    return this.breaker.openCircuits();
  }

  redisFull(): RedisFullState | undefined {
    return this.memory.state();
  }

  /** Some work queue is paused (an outage, a 429, refused credentials); false when Redis does not tell within 1 s. */
  private async paused(): Promise<boolean> {
    const ttls = await Promise.all(
      // With a count: a worker's own limiter key lives for up to a second in normal work too.
      this.queues.map((q) => withTimeout(q.getRateLimitTtl(LIMITER_MAX), 1_000, 'reading the queue pause').catch(() => 0)),
    );
    return ttls.some((t) => t > 0);
  }

  /**
   * Graceful stop within `deadlineMs`: no job is fetched any more and the running schedules are told to stop
   * (they write nothing more), then running jobs finish or are handed back (no create starts once stopping),
   * and the queues close. The caller closes the connections.
   */
  async stop(deadlineMs: number): Promise<void> {
    const { logger } = this.opts;
    this.stopping = true;
    this.breaker.stop();
    this.memory.stop();
    const deadline = this.clock() + deadlineMs;
    const left = (): number => deadline - this.clock();
    // First nothing new: no job is fetched any more (running ones go on), and a running poll or state sync
    // is told to stop; it writes nothing more (what it covered is repeated by the next run).
    await within(Promise.all(this.workers.map((w) => w.pauseLocal())), 1_000);
    if ((await within(Promise.all(this.schedules.map((s) => s.stop(true))), left() / 3)) === 'timeout') {
      logger.warn('a scheduled run (poll or state sync) did not stop in time; it is abandoned (what it covered is repeated by the next run)');
    }
    // While a queue is paused no job is fetched, and BullMQ's worker may sleep out the pause: do not
    // wait for it; hand back whatever still runs and close at once.
    const paused = await this.paused();
    logger.debug({ paused }, 'shutdown: schedules stopped; closing the workers');
    await Promise.all(
      this.workers.map(async (w) => {
        if (paused) return w.closeNow('shutdown', Math.max(500, Math.min(2_000, left() - 3_000)));
        if ((await within(w.close(), left() - 3_000)) === 'timeout') {
          logger.warn({ queue: w.queue.name }, 'jobs still running at the deadline; handing them back to the queue');
          w.cancelAll('shutdown');
          await within(w.close(true), Math.max(500, left() - 1_500));
        }
      }),
    );
    await within(Promise.all(this.queues.map((q) => q.close())), Math.max(200, left() - 1_000));
  }
}

/** Runs `p` but gives up waiting after `ms` (the work itself may go on). */
export async function within<T>(p: Promise<T>, ms: number): Promise<'done' | 'timeout'> {
  let timer: NodeJS.Timeout | undefined;
  const timeout = new Promise<'timeout'>((resolve) => {
    timer = setTimeout(() => resolve('timeout'), Math.max(0, ms));
  });
  try {
    return await Promise.race([p.then(() => 'done' as const), timeout]);
  } finally {
    clearTimeout(timer);
  }
}
