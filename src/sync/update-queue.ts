import { Queue } from 'bullmq';
import type { RedisConnection } from '../infra/redis.js';
import type { Logger } from '../infra/logger.js';
import type { SessionChange, SessionChangeSink } from '../poll/session-change.js';
import { jobOptions, type RetryPolicy } from '../jobs/runtime.js';
import { UPDATE_QUEUE, updateJobId } from '../store/keys.js';
import type { SyncState } from './sync-state.js';

export { UPDATE_QUEUE, updateJobId };

export interface UpdateJobData {
  sessionId: string;
}

/**
 * Update jobs are retried like forward jobs, but removed once done: the change itself lives in Redis
 * (SyncState), and a finished job must not keep the id blocked for the session's next change.
 */
export function updateJobPolicy(policy: RetryPolicy): RetryPolicy {
  return { ...policy, keepCompletedMs: 0 };
}

/** The update queue outside the daemon (tests, tools); the daemon gets its own from the job runtime. */
export function createUpdateQueue(connection: RedisConnection, prefix: string, policy: RetryPolicy): Queue<UpdateJobData> {
  return new Queue<UpdateJobData>(UPDATE_QUEUE, { connection, prefix, defaultJobOptions: jobOptions(updateJobPolicy(policy)) });
}

/**
 * The updater's end of the change-record contract: each record is merged into the session's pending
 * change in Redis, then the session's update job is made sure to exist. A change arriving while the
 * job runs is picked up by the same run (it claims again before finishing); one arriving in the last
 * instant is picked up by `enqueue` from the worker's completion or by the periodic sweep.
 */
export class UpdateSink implements SessionChangeSink {
  constructor(
    private readonly opts: {
      queue: Queue<UpdateJobData>;
      state: SyncState;
      logger: Logger;
      /** UPDATE_INTERVAL: a change waits this long from the first change of its window (and after the last update), gathering what follows. @defaultValue 0 */
      updateIntervalMs?: number;
      clock?: () => number;
    },
  ) {}

  async emit(change: SessionChange): Promise<void> {
    const stored = await this.opts.state.mergePending(change, (this.opts.clock ?? Date.now)());
    if (!stored) {
      this.opts.logger.debug({ alertId: change.sessionId, seq: change.seq }, 'change record not newer than what is known; ignored');
      return;
    }
    // A new change may well succeed where the last one failed: it retries a failed update.
    await this.enqueue(change.sessionId, { retryFailed: true });
  }

  /**
   * Makes sure the session has an update job. A failed one stays failed (visible in `failed list`) unless
   * `retryFailed` (a new change may well succeed): the periodic sweep must not retry for ever an update that
   * cannot succeed. The job waits until UPDATE_INTERVAL has passed since the session's last update, so the
   * changes of an active session make one update and one note per interval; a state change (a close, a
   * reopen) never waits, and moves a waiting job forward.
   */
  async enqueue(sessionId: string, opts: { retryFailed?: boolean } = {}): Promise<void> {
    const jobId = updateJobId(sessionId);
    const delay = await this.delayFor(sessionId);
    const job = await this.opts.queue.add('update', { sessionId }, { jobId, ...(delay > 0 ? { delay } : {}) });
    const state = await job.getState();
    if (state === 'failed' && opts.retryFailed) {
      await job.retry('failed');
      this.opts.logger.info({ alertId: sessionId }, 'a new change of the session retries its failed update');
    } else if (state === 'delayed' && delay === 0) {
      // Moved forward: it may have become active meanwhile, which is just as good.
      await job.promote().catch(() => undefined);
    }
  }

  /**
   * How long the session's next update waits (0: now): the rest of UPDATE_INTERVAL since the later of its
   * last update and the first change waiting, unless a state change waits (a close or a reopen never waits).
   */
  async delayFor(sessionId: string): Promise<number> {
    const interval = this.opts.updateIntervalMs ?? 0;
    if (interval <= 0) return 0;
    const pending = await this.opts.state.pending(sessionId).catch(() => null);
    if (!pending || pending.kinds.includes('state')) return 0;
    // Gathered for one interval from the first change of the window, and never sooner than one interval
    // after the last update: an active session makes one update and one note per interval, its first included.
    const { lastToXsoar } = await this.opts.state.get(sessionId);
    const from = Math.max(lastToXsoar ?? 0, pending.firstReceivedAt ?? (this.opts.clock ?? Date.now)());
    return Math.max(0, from + interval - (this.opts.clock ?? Date.now)());
  }
}
