import { randomUUID } from 'node:crypto';
import type { RedisConnection } from '../infra/redis.js';
import type { Logger } from '../infra/logger.js';

/**
 * Starts a run when one is due and nobody holds the lease. Times are Redis's own (TIME), one clock for
 * every replica, so a host whose clock runs ahead cannot push the schedule into the future.
 * A missing schedule (first start, or Redis lost its data) is due at once, plus `firstDelay`.
 * KEYS: schedule hash, lease key. ARGV: token, leaseMs, firstDelayMs.
 * Returns {1, now} when this caller now holds the lease, {0, msUntilDue} otherwise.
 */
const TRY_START = `
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
if redis.call('EXISTS', KEYS[2]) == 1 then return {0, redis.call('PTTL', KEYS[2])} end
local due = tonumber(redis.call('HGET', KEYS[1], 'due') or '')
if not due then
  due = now + tonumber(ARGV[3])
  redis.call('HSET', KEYS[1], 'due', tostring(due), 'created', tostring(now))
end
if now < due then return {0, due - now} end
redis.call('SET', KEYS[2], ARGV[1], 'PX', ARGV[2])
redis.call('HSET', KEYS[1], 'started', tostring(now), 'holder', ARGV[1])
return {1, now}
`;

/** Creates a missing schedule, due after the first delay. KEYS: schedule hash. ARGV: firstDelayMs. Returns 1 when created. */
const ENSURE = `
if redis.call('HEXISTS', KEYS[1], 'due') == 1 then return 0 end
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
redis.call('HSET', KEYS[1], 'due', tostring(now + tonumber(ARGV[1])), 'created', tostring(now))
return 1
`;

/** Keeps the lease while the run lives. KEYS: lease. ARGV: token, leaseMs. */
const RENEW = `if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('PEXPIRE', KEYS[1], ARGV[2]) end return 0`;

/**
 * The run ended: the next one is due one interval after this one started (at once when the run took
 * longer), and the lease is given up. A run that lost its lease changes nothing.
 * KEYS: schedule hash, lease. ARGV: token, everyMs, startedAt, ok (1/0), error.
 */
const FINISH = `
if redis.call('GET', KEYS[2]) ~= ARGV[1] then return 0 end
redis.call('DEL', KEYS[2])
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
redis.call('HSET', KEYS[1], 'due', tostring(tonumber(ARGV[3]) + tonumber(ARGV[2])), 'ended', tostring(now), 'ok', ARGV[4], 'error', ARGV[5])
return 1
`;

/** What a run gets: a signal and a check that it still holds the lease (ask it before a write that moves state forward). */
export interface ScheduledRun {
  /** Aborts when the lease is lost (Redis lost it, this process froze past it) or the daemon stops. */
  signal: AbortSignal;
  /** True while this run still holds its lease (one Redis read). */
  stillHeld(): Promise<boolean>;
}

export interface ScheduledJobOptions<R> {
  /** Used in log lines and as the `schedule` field: "poll", "state-sync". */
  name: string;
  redis: RedisConnection;
  /** Hash holding the schedule (due, started, ended, ok, error). */
  scheduleKey: string;
  /** Held by the replica running right now; expires `leaseMs` after its holder stops renewing it. */
  leaseKey: string;
  everyMs: number;
  /** Delay of the first run after the schedule is created (first start, or after Redis lost it). @defaultValue 0 */
  firstDelayMs?: number;
  /**
   * How long a dead holder blocks the others. The lease is renewed every third of it while the run lives,
   * so a run is taken over this long after its process died. @defaultValue 5000
   */
  leaseMs?: number;
  /** One run. Its signal aborts when the lease is lost or the daemon stops: stop before writing anything more. */
  run(run: ScheduledRun): Promise<R>;
  logger: Logger;
  /** Failures logged as warnings, not errors (reported elsewhere already, e.g. refused credentials). */
  isWarning?(err: unknown): boolean;
  events?: {
    onRun?(outcome: 'ok' | 'error', durationMs: number, result: R | undefined, error?: unknown): void;
    /** A Redis error of the schedule itself (a full Redis shows up here). */
    onError?(err: Error): void;
  };
  /** Local clock for durations only. */
  clock?: () => number;
}

/**
 * A periodic run, one per deployment however many replicas there are: every replica checks every
 * second or so whether a run is due; the first to find it due takes a short lease (5 s) and renews it
 * while the run lives. A dead holder's run is taken over within one lease; a schedule Redis lost is due
 * at once (so it re-creates itself); the due time is Redis's clock, so no host's clock can move it.
 * The schedule in Redis is its own watchdog: there is nothing to re-create by hand.
 */
export class ScheduledJob<R = unknown> {
  private timer: NodeJS.Timeout | undefined;
  private current: Promise<void> | undefined;
  private abort: AbortController | undefined;
  private stopped = true;
  private lastError = '';
  private readonly clock: () => number;

  constructor(private readonly opts: ScheduledJobOptions<R>) {
    this.clock = opts.clock ?? Date.now;
  }

  private get leaseMs(): number {
    return this.opts.leaseMs ?? 5_000;
  }

  /** How often a replica looks whether a run is due. */
  private get tickMs(): number {
    return Math.max(100, Math.min(1_000, Math.floor(this.opts.everyMs / 4), Math.floor(this.leaseMs / 4)));
  }

  start(): void {
    this.stopped = false;
    this.schedule(0);
  }

  /** Whether this process is running the job right now. */
  get running(): boolean {
    return this.current !== undefined;
  }

  /**
   * Makes the schedule exist (no-op when it does), due after its first delay like a new one: after Redis lost
   * its data, say, without waiting for the next check. True when it was missing.
   */
  async ensure(): Promise<boolean> {
    const created = await this.opts.redis.eval(ENSURE, 1, this.opts.scheduleKey, String(this.opts.firstDelayMs ?? 0));
    if (created === 1) this.schedule(0);
    return created === 1;
  }

  /**
   * Stops looking for due runs. A run in progress finishes first unless `abandon` (it is then told to
   * stop through its signal, and its lease expires; the next holder repeats its work).
   */
  async stop(abandon = false): Promise<void> {
    this.stopped = true;
    clearTimeout(this.timer);
    if (abandon) this.abort?.abort(new Error('the daemon is stopping'));
    await this.current;
  }

  private schedule(ms: number): void {
    if (this.stopped) return;
    clearTimeout(this.timer);
    this.timer = setTimeout(() => void this.tick(), Math.max(0, Math.min(ms, this.tickMs)));
    this.timer.unref();
  }

  private async tick(): Promise<void> {
    if (this.stopped || this.current) return;
    const token = randomUUID();
    let wait = this.tickMs;
    try {
      const [started, value] = (await this.opts.redis.eval(
        TRY_START,
        2,
        this.opts.scheduleKey,
        this.opts.leaseKey,
        token,
        String(this.leaseMs),
        String(this.opts.firstDelayMs ?? 0),
      )) as [number, number];
      if (started === 1 && !this.stopped) {
        this.current = this.runHeld(token, value).finally(() => {
          this.current = undefined;
        });
        await this.current;
        wait = 0;
      } else if (started === 1) {
        await this.opts.redis.del(this.opts.leaseKey);
      } else {
        wait = value > 0 ? value : this.tickMs;
      }
    } catch (err) {
      this.opts.events?.onError?.(err as Error);
      this.opts.logger.debug({ err, schedule: this.opts.name }, 'schedule check failed; trying again');
    }
    this.schedule(wait);
  }

  private async runHeld(token: string, startedAt: number): Promise<void> {
    const { redis, leaseKey, scheduleKey, logger, name } = this.opts;
    const abort = new AbortController();
    this.abort = abort;
    const renew = setInterval(() => {
      redis
        .eval(RENEW, 1, leaseKey, token, String(this.leaseMs))
        .then((kept) => {
          // Lost (Redis lost it, or this process froze past the lease): another replica may run now.
          if (kept === 0 && !abort.signal.aborted) abort.abort(new Error(`the ${name} lease was lost`));
        })
        .catch(() => undefined);
    }, Math.max(50, Math.floor(this.leaseMs / 3)));
    renew.unref();
    const began = this.clock();
    let ok = true;
    let error = '';
    try {
      const stillHeld = async (): Promise<boolean> => !abort.signal.aborted && (await redis.get(leaseKey)) === token;
      const result = await this.opts.run({ signal: abort.signal, stillHeld });
      this.opts.events?.onRun?.('ok', this.clock() - began, result);
      if (this.lastError) logger.info({ schedule: name }, `${name} works again`);
      this.lastError = '';
    } catch (err) {
      ok = false;
      error = err instanceof Error ? err.message : String(err);
      this.opts.events?.onRun?.('error', this.clock() - began, undefined, err);
      // The same failure every interval (say, Code42 down for an hour) is logged once, then again when it changes.
      if (error !== this.lastError) logger[this.opts.isWarning?.(err) ? 'warn' : 'error']({ err, schedule: name }, `${name} failed; the next run covers the same window`);
      else logger.debug({ err, schedule: name }, `${name} failed again`);
      this.lastError = error;
    } finally {
      clearInterval(renew);
      this.abort = undefined;
      await redis
        .eval(FINISH, 2, scheduleKey, leaseKey, token, String(this.opts.everyMs), String(startedAt), ok ? '1' : '0', error.slice(0, 500))
        .catch((err: unknown) => this.opts.events?.onError?.(err as Error));
    }
  }
}
