import type { RedisConnection } from '../infra/redis.js';
import { RateLimiterMemory, RateLimiterRedis, RateLimiterRes } from 'rate-limiter-flexible';

/**
 * Splits a per-minute budget into short windows of whole seconds (the Redis store counts in seconds),
 * so requests are paced across the minute instead of sent in one burst that a server-side window
 * would answer with 429s. E.g. 120/min → 2 per 1 s; 100/min → 5 per 3 s; 30/min → 1 per 2 s.
 */
export function budgetWindow(perMinute: number): { points: number; durationSec: number } {
  let best = { points: 1, durationSec: Math.max(1, Math.ceil(60 / perMinute)) };
  let bestUse = (best.points * 60) / (best.durationSec * perMinute);
  for (let d = 1; d <= 60; d++) {
    const points = Math.floor((perMinute * d) / 60);
    if (points < 1) continue;
    const use = (points * 60) / (d * perMinute);
    if (use > bestUse + 1e-9) {
      best = { points, durationSec: d };
      bestUse = use;
    }
    if (use >= 0.98) break;
  }
  return best;
}

export interface RequestBudgetOptions {
  redis: RedisConnection;
  /** Redis key prefix of the deployment; every replica sharing it shares the budget. */
  prefix: string;
  perMinute: number;
  /** Called with the time a request had to wait for the budget (for metrics). */
  onWait?: (ms: number) => void;
}

/**
 * The Code42 request budget of the whole deployment (all processes on one Redis prefix).
 * `acquire()` resolves when one more request may be sent.
 */
export class RequestBudget {
  private readonly limiter: RateLimiterRedis;
  readonly points: number;
  readonly durationSec: number;

  constructor(private readonly opts: RequestBudgetOptions) {
    const { points, durationSec } = budgetWindow(opts.perMinute);
    this.points = points;
    this.durationSec = durationSec;
    this.limiter = new RateLimiterRedis({
      storeClient: opts.redis,
      keyPrefix: `${opts.prefix}:code42-budget`,
      points,
      duration: durationSec,
      rejectIfRedisNotReady: true,
      // While Redis is unreachable each process keeps to the budget on its own.
      insuranceLimiter: new RateLimiterMemory({ points, duration: durationSec }),
    });
  }

  async acquire(signal?: AbortSignal): Promise<void> {
    const started = Date.now();
    for (;;) {
      signal?.throwIfAborted();
      try {
        await this.limiter.consume('requests', 1);
        const waited = Date.now() - started;
        if (waited > 0) this.opts.onWait?.(waited);
        return;
      } catch (err) {
        if (!(err instanceof RateLimiterRes)) throw err;
        // Spread the waiters a little so they do not all retry on the same millisecond.
        await new Promise((resolve) => setTimeout(resolve, err.msBeforeNext + Math.floor(Math.random() * 25)));
      }
    }
  }
}
