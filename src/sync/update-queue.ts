import { Queue } from 'bullmq';
import type { Redis } from 'ioredis';
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
export function createUpdateQueue(connection: Redis, prefix: string, policy: RetryPolicy): Queue<UpdateJobData> {
  return new Queue<UpdateJobData>(UPDATE_QUEUE, { connection, prefix, defaultJobOptions: jobOptions(updateJobPolicy(policy)) });
}

/**
 * The updater's end of the change-record contract: each record is merged into the session's pending
 * change in Redis, then the session's update job is made sure to exist. A change arriving while the
 * job runs is picked up by the same run (it claims again before finishing); one arriving in the last
 * instant is picked up by `enqueue` from the worker's completion or by the periodic sweep.
 */
export class UpdateSink implements SessionChangeSink {
  constructor(private readonly opts: { queue: Queue<UpdateJobData>; state: SyncState; logger: Logger }) {}

  async emit(change: SessionChange): Promise<void> {
    const stored = await this.opts.state.mergePending(change);
    if (!stored) {
      this.opts.logger.debug({ alertId: change.sessionId, seq: change.seq }, 'change record not newer than what is known; ignored');
      return;
    }
    // A new change may well succeed where the last one failed: it retries a failed update.
    await this.enqueue(change.sessionId, { retryFailed: true });
  }

  /**
   * Makes sure the session has an update job. A failed one stays failed (visible in `failed list`)
   * unless `retryFailed`: the periodic sweep must not retry for ever an update that cannot succeed.
   */
  async enqueue(sessionId: string, opts: { retryFailed?: boolean } = {}): Promise<void> {
    const jobId = updateJobId(sessionId);
    const job = await this.opts.queue.add('update', { sessionId }, { jobId });
    if (opts.retryFailed && (await job.getState()) === 'failed') {
      await job.retry('failed');
      this.opts.logger.info({ alertId: sessionId }, 'a new change of the session retries its failed update');
    }
  }
}
