import type { RedisConnection } from '../infra/redis.js';
import { withTimeout } from '../infra/timeout.js';
import type { CheckResult, ReadinessSource } from '../infra/health.js';

export type { CheckResult, ReadinessSource };
import type { PollState } from '../poll/poll-state.js';
import type { Upstream, UpstreamStatus } from '../guard/upstream-status.js';
import type { OpenCircuit } from '../guard/circuit-breaker.js';
import { readRedisMemory, type RedisFullState } from '../guard/redis-memory.js';

export interface ReadinessReport {
  ready: boolean;
  checks: Record<string, CheckResult>;
  /** Names of the degraded checks; absent when there are none. */
  degraded?: string[];
}

export interface ReadinessOptions {
  /** A connection that fails fast (not a worker connection that waits for Redis forever). */
  redis: RedisConnection;
  pollState: PollState;
  pollLockKey: string;
  status: UpstreamStatus;
  pollIntervalMs: number;
  startedAt: number;
  shuttingDown: () => boolean;
  /** The job runtime's guards: upstreams whose circuit is open in this process, and whether Redis refuses writes. */
  guards?: { openCircuits(): Map<Upstream, OpenCircuit>; redisFull(): RedisFullState | undefined };
  /** More checks (read at each probe: a part wired after the probe still counts). Each answers within a second or fails. */
  sources?: () => readonly ReadinessSource[];
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
        } else if (last && !last.ok && now - last.at <= limit) {
          // Polls run but fail (Code42 down, Redis full...): the deployment's condition, waited out and
          // reported; credentials refused are reported by the *Auth checks.
          checks.poll = { ok: true, degraded: true, detail: `polls are failing (last attempt ${Math.round((now - last.at) / 1000)} s ago): ${last.error}` };
        } else if (this.opts.guards?.redisFull()) {
          checks.poll = { ok: true, degraded: true, detail: 'no poll can complete while Redis refuses writes' };
        } else {
          const why = last && !last.ok && last.error ? `; last poll failed: ${last.error}` : '';
          const when = Number.isFinite(sinceSuccess) ? `${Math.round(sinceSuccess / 1000)} s ago` : 'never';
          checks.poll = { ok: false, detail: `no successful poll within ${Math.round(limit / 1000)} s (last success: ${when})${why}` };
        }
      } catch (err) {
        checks.poll = { ok: false, detail: (err as Error).message };
      }
      checks.listing = await this.listingCheck(now);
    }

    for (const upstream of ['code42', 'xsoar'] as const) {
      const failure = this.opts.status.authFailure(upstream);
      checks[`${upstream}Auth`] = failure ? { ok: false, detail: failure.message } : { ok: true, detail: 'no authentication failure' };
    }
    const outages = this.opts.guards?.openCircuits() ?? new Map<Upstream, OpenCircuit>();
    for (const upstream of ['code42', 'xsoar'] as const) {
      const open = outages.get(upstream);
      checks[upstream] = open
        ? {
            ok: true,
            degraded: true,
            since: new Date(open.since).toISOString(),
            detail: `${upstream === 'xsoar' ? 'XSOAR' : 'Code42'} down for ${Math.round((now - open.since) / 1000)} s: ${open.reason}; the queue waits (no attempts spent), next probe in ${Math.max(0, Math.round((open.nextProbeAt - now) / 1000))} s`,
          }
        : { ok: true, detail: 'answering' };
    }
    if (redisOk) checks.redisMemory = await this.memoryCheck(now);
    for (const source of this.opts.sources?.() ?? []) {
      checks[source.name] = redisOk
        ? await within1s(source.check(now), source.name).catch((err: unknown) => ({ ok: true, degraded: true, detail: `could not check: ${(err as Error).message}` }))
        : { ok: true, detail: 'unknown while Redis does not answer' };
    }

    const degraded = Object.entries(checks).filter(([, c]) => c.degraded).map(([name]) => name);
    return { ready: Object.values(checks).every((c) => c.ok), checks, ...(degraded.length > 0 ? { degraded } : {}) };
  }

  /**
   * A listing of Code42 sessions that does not end (a server ignoring `page_number`): the poller bounds its
   * reads and keeps forwarding from the pages it gets; reported (degraded) while the last poll met it.
   */
  private async listingCheck(now: number): Promise<CheckResult> {
    const last = await within1s(this.opts.pollState.lastPoll(), 'reading the last poll').catch(() => null);
    const trouble = last?.listingTrouble;
    if (!trouble) return { ok: true, detail: 'every listing read ended' };
    return {
      ok: true,
      degraded: true,
      since: new Date(trouble.since).toISOString(),
      detail: `${trouble.detail} (for ${Math.round(Math.max(0, now - trouble.since) / 1000)} s; reads are bounded, the checkpoint does not move past what was read)`,
    };
  }

  /** Used memory against maxmemory, and whether Redis refuses writes (a full Redis pauses forwarding). */
  private async memoryCheck(now: number): Promise<CheckResult> {
    const memory = await within1s(readRedisMemory(this.opts.redis), 'INFO memory').catch(() => undefined);
    const mb = (n: number): string => `${(n / 1024 / 1024).toFixed(1)} MB`;
    const usage = memory ? `used ${mb(memory.usedBytes)} of ${memory.maxBytes > 0 ? `maxmemory ${mb(memory.maxBytes)}` : 'no maxmemory limit'}` : 'memory unknown';
    const full = this.opts.guards?.redisFull();
    if (full) {
      return {
        ok: true,
        degraded: true,
        since: new Date(full.since).toISOString(),
        detail: `Redis refuses writes for ${Math.round((now - full.since) / 1000)} s (${full.reason}); ${usage}; forwarding waits and resumes when Redis accepts writes (raise maxmemory)`,
      };
    }
    return { ok: true, detail: usage };
  }
}
