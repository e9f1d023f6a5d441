import type { Queue } from 'bullmq';
import type { RedisConnection } from '../infra/redis.js';
import type { Ledger } from '../forward/ledger.js';
import { readRedisMemory } from '../guard/redis-memory.js';
import type { JobRuntime } from '../jobs/runtime.js';
import type { PollState } from '../poll/poll-state.js';
import type { MetricsSources } from './metrics.js';

/** What /metrics reads at scrape time: queue depth, checkpoint, unknown ids, open circuits, Redis memory. */
export function metricSources(from: { forwardQueue: Queue; pollState: PollState; ledger: Ledger; health: RedisConnection; runtime: JobRuntime }): MetricsSources {
  const { forwardQueue, pollState, ledger, health, runtime } = from;
  return {
    queueDepth: async () => {
      const c = await forwardQueue.getJobCounts('waiting', 'active', 'delayed', 'failed', 'prioritized');
      return { waiting: (c.waiting ?? 0) + (c.prioritized ?? 0), active: c.active ?? 0, delayed: c.delayed ?? 0, failed: c.failed ?? 0 };
    },
    checkpoint: () => pollState.getCheckpoint(),
    incidentIdUnknown: () => ledger.acceptedCount(),
    upstreamOutages: () => runtime.openCircuits(),
    redisMemory: () => readRedisMemory(health),
    redisFullSince: () => runtime.redisFull()?.since,
  };
}
