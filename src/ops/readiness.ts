import type { Redis } from 'ioredis';
import { withTimeout } from '../infra/timeout.js';
import type { PollState } from '../pipeline/poll-state.js';
import type { UpstreamStatus } from '../pipeline/upstream-status.js';

export interface CheckResult {
  ok: boolean;
  detail: string;
}

export interface ReadinessReport {
  ready: boolean;
  checks: Record<string, CheckResult>;
}

export interface ReadinessOptions {
  /** A connection that fails fast (not a worker connection that waits for Redis forever). */
  redis: Redis;
  pollState: PollState;
  pollLockKey: string;
  status: UpstreamStatus;
  pollIntervalMs: number;
  startedAt: number;
  shuttingDown: () => boolean;
  clock?: () => number;
}

/** Every check answers within a second, so a probe never hangs on a dead Redis. */
function within1s<T>(p: Promise<T>, what: string): Promise<T> {
  return withTimeout(p, 1_000, `${what} timed out after 1000 ms`);
}

/**
 * /readyz: Redis answers, the deployment's last poll succeeded within 3 poll intervals (read from
 * Redis, so a replica that is not the one polling still knows), and neither upstream refuses our
 * credentials. Never a reason to restart the process: that is /livez's job.
 */
export class Readiness {
  constructor(private readonly opts: ReadinessOptions) {}

  async check(): Promise<ReadinessReport> {
    const now = (this.opts.clock ?? Date.now)();
    const checks: Record<string, CheckResult> = {};
    checks.shutdown = this.opts.shuttingDown() ? { ok: false, detail: 'shutting down' } : { ok: true, detail: 'running' };

    let redisOk = false;
    try {
      await within1s(this.opts.redis.ping(), 'Redis PING');
      redisOk = true;
      checks.redis = { ok: true, detail: 'PONG' };
    } catch (err) {
      checks.redis = { ok: false, detail: `Redis does not answer: ${(err as Error).message}` };
    }

    const limit = 3 * this.opts.pollIntervalMs;
    if (!redisOk) {
      checks.poll = { ok: false, detail: 'unknown while Redis does not answer' };
    } else {
      try {
        const last = await within1s(this.opts.pollState.lastPoll(), 'reading the last poll');
        const polling = (await within1s(this.opts.redis.exists(this.opts.pollLockKey), 'reading the poll lock')) === 1;
        const sinceSuccess = last?.lastSuccessAt ? now - last.lastSuccessAt : Infinity;
        if (sinceSuccess <= limit) {
          checks.poll = { ok: true, detail: `last successful poll ${Math.round(sinceSuccess / 1000)} s ago` };
        } else if (polling && (last === null || last.ok)) {
          checks.poll = { ok: true, detail: 'a poll is in progress' };
        } else if (now - this.opts.startedAt <= limit && (last === null || last.ok)) {
          checks.poll = { ok: true, detail: 'starting: no poll completed yet' };
        } else {
          const why = last && !last.ok && last.error ? `; last poll failed: ${last.error}` : '';
          const when = Number.isFinite(sinceSuccess) ? `${Math.round(sinceSuccess / 1000)} s ago` : 'never';
          checks.poll = { ok: false, detail: `no successful poll within ${Math.round(limit / 1000)} s (last success: ${when})${why}` };
        }
      } catch (err) {
        checks.poll = { ok: false, detail: (err as Error).message };
      }
    }

    for (const upstream of ['code42', 'xsoar'] as const) {
      const failure = this.opts.status.authFailure(upstream);
      checks[`${upstream}Auth`] = failure ? { ok: false, detail: failure.message } : { ok: true, detail: 'no authentication failure' };
    }
    return { ready: Object.values(checks).every((c) => c.ok), checks };
  }
}
