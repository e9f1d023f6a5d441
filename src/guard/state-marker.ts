import type { RedisConnection } from '../infra/redis.js';
import type { Session } from '../code42/schemas.js';
import type { Logger } from '../infra/logger.js';
import type { StateKeys } from '../store/keys.js';

const CLOCK_MARGIN_MS = 10 * 60_000;

export interface StateMarkerOptions {
  redis: RedisConnection;
  keys: StateKeys;
  logger: Logger;
  /** How often the marker is checked while running. */
  checkIntervalMs: number;
  /**
   * How long after a loss sessions from before it may still be queued (first fetch + look-back + the retry
   * budget): the doubt lasts that long.
   */
  doubtTtlMs: number;
  /**
   * At start without a marker: whether XSOAR holds any incident this forwarder made (null: cannot tell). When it
   * holds none, this is a first start and there is nothing to search for.
   */
  xsoarHoldsAny?: () => Promise<boolean | null>;
  /** Called once per detected loss, after the marker is back: re-create what lives only in Redis (the schedule). */
  onLoss?: () => Promise<void>;
  /** What was queued is gone with the rest: have the whole window read again, from `since` (the poller's business). */
  requestReread?: (since: number) => Promise<void>;
  /** Counted once per detected loss. */
  onLossCounted?: () => void;
  clock?: () => number;
}

/**
 * Notices that Redis lost this deployment's data (a restart without AOF, a failover to an empty replica, a flush):
 * the daemon keeps a marker key, and its absence, at start or while running, means every record may be gone (the
 * ledger too). Then, for every session that began before the loss was noticed, the worker searches XSOAR before
 * creating, for as long as such a session may still be queued. A start without a marker is a first start only when
 * XSOAR holds no incident this forwarder made; otherwise it is treated as a loss.
 */
export class StateMarker {
  private timer: NodeJS.Timeout | undefined;
  private readonly clock: () => number;
  private checking: Promise<boolean> | undefined;
  private firstStartCheck: Promise<boolean> | undefined;

  constructor(private readonly opts: StateMarkerOptions) {
    this.clock = opts.clock ?? Date.now;
  }

  /** Checks once (blocking start) and then every `checkIntervalMs`. */
  async start(): Promise<void> {
    // Redis failing now is not fatal: the periodic check and every job's doubtFor check again.
    await this.check('start').catch((err: unknown) => this.opts.logger.warn({ err }, 'could not check the state marker at start'));
    this.timer = setInterval(() => {
      void this.check('running').catch((err: unknown) => this.opts.logger.debug({ err }, 'state marker check failed'));
    }, this.opts.checkIntervalMs);
    this.timer.unref();
  }

  stop(): void {
    if (this.timer) clearInterval(this.timer);
    this.timer = undefined;
  }

  /** Sets the marker when it is missing; when it was missing, records the doubt and reports the loss. */
  async check(when: 'start' | 'running'): Promise<boolean> {
    // One check at a time; a caller arriving meanwhile waits for its outcome (the doubt must be written first).
    this.checking ??= this.checkOnce(when).finally(() => {
      this.checking = undefined;
    });
    return this.checking;
  }

  private async checkOnce(when: 'start' | 'running'): Promise<boolean> {
    const { redis, keys } = this.opts;
    const now = this.clock();
    if ((await redis.exists(keys.marker)) === 1) return false;
    // The first replica to notice records since when; the others keep that time. A start without a marker may
    // be a first start: the first session that needs it asks XSOAR whether it holds any incident of ours.
    const unverified = when === 'start' && this.opts.xsoarHoldsAny !== undefined;
    await redis.set(keys.rebuild, JSON.stringify({ since: now, ...(unverified ? { firstStart: true } : {}) }), 'PX', this.opts.doubtTtlMs, 'NX');
    // What was queued is gone with the rest: the poller reads the whole window again at its next poll.
    if (!unverified) await this.opts.requestReread?.(now);
    const rescheduled = await (this.opts.onLoss?.() ?? Promise.resolve()).then(
      () => true,
      (err: unknown) => {
        this.opts.logger.error({ err }, 'could not re-create the poll schedule; the next check tries again');
        return false;
      },
    );
    // The marker comes back only once the schedule is back, so a failed attempt is repeated by the next check.
    if (!rescheduled) return true;
    await redis.set(keys.marker, JSON.stringify({ since: now }), 'NX');
    if (!unverified) this.reportLoss(when, now);
    return true;
  }

  private reportLoss(when: 'start' | 'running', since: number): void {
    this.opts.onLossCounted?.();
    this.opts.logger.warn(
      { detected: when, since: new Date(since).toISOString() },
      when === 'start'
        ? 'Redis holds no state of this deployment, and XSOAR holds incidents it made (or cannot tell): Redis lost its data; searching XSOAR before creating each session that began before the start'
        : 'Redis lost its data while running: poll schedule re-created; searching XSOAR before creating each session that began before now',
    );
  }

  /**
   * A start without a marker: a first start when XSOAR holds no incident this forwarder made (then nothing can be
   * created twice and the doubt is dropped), a loss otherwise (some found, or the label query refused). Asked once,
   * by the first job that needs it; an XSOAR error reaches that job like any other (auth pauses the queue, an
   * outage is retried) and the next job asks again.
   */
  private verifyFirstStart(since: number): Promise<boolean> {
    this.firstStartCheck ??= (async () => {
      const holds = await (this.opts.xsoarHoldsAny as () => Promise<boolean | null>)();
      const { redis, keys } = this.opts;
      if (holds === false) {
        await redis.del(keys.rebuild);
        this.opts.logger.info('first start: Redis holds no state of this deployment and XSOAR no incident it made');
        return true;
      }
      await redis.set(keys.rebuild, JSON.stringify({ since }), 'KEEPTTL');
      // Not a first start after all: the first poll's limit of FIRST_FETCH is lifted and the whole window read again.
      await this.opts.requestReread?.(since);
      this.reportLoss('start', since);
      return false;
    })().catch((err: unknown) => {
      this.firstStartCheck = undefined;
      throw err;
    });
    return this.firstStartCheck;
  }

  async doubtFor(session: Session): Promise<{ at: number; name: string | null } | null> {
    const { redis, keys } = this.opts;
    const replies = (await redis.multi().exists(keys.marker).get(keys.rebuild).exec()) ?? [];
    for (const [err] of replies) if (err) throw err;
    let raw = (replies[1]?.[1] as string | null | undefined) ?? null;
    // Lost between two checks: notice it here, before anything is created from an empty ledger.
    if (replies[0]?.[1] !== 1) {
      await this.check('running');
      raw = await redis.get(keys.rebuild);
    }
    if (raw === null) return null;
    let since = this.clock();
    let firstStart = false;
    try {
      const parsed = JSON.parse(raw) as { since?: unknown; firstStart?: unknown };
      since = Number(parsed.since) || since;
      firstStart = parsed.firstStart === true;
    } catch {
      // unreadable: doubt from now
    }
    // Begin times are Code42's clock, `since` is ours: the margin covers a skew between the two.
    if (session.beginTime > since + CLOCK_MARGIN_MS) return null;
    if (firstStart && this.opts.xsoarHoldsAny && (await this.verifyFirstStart(since))) return null;
    return { at: since, name: null };
  }
}
