import type { Queue } from 'bullmq';
import type { RedisConnection } from '../infra/redis.js';
import { Code42Clock } from '../code42/code42-clock.js';
import { SESSIONS_PAGE_SIZE, type IncydrClient, type SessionQuery } from '../code42/incydr-client.js';
import { Code42RequestError, Code42ResponseError } from '../code42/errors.js';
import type { Session } from '../code42/schemas.js';
import type { SessionState, SeverityWord } from '../code42/vocabulary.js';
import type { Logger } from '../infra/logger.js';
import type { StateKeys } from '../store/keys.js';
import { SessionIntake, enqueueSessions } from './session-intake.js';
import { PollState, type SweepCursor, type SweepPosition } from './poll-state.js';
import { RedisLock } from '../jobs/redis-lock.js';
import { RejectedLog } from './rejected-log.js';
import type { SessionChangeSink } from './session-change.js';
import { SessionTracker } from './session-tracker.js';
import { sweepTiers, sweepPagesDue, type SweepTier } from './sweep-plan.js';

/** Sessions stay in the seen-set this long beyond the oldest begin time any read can still return. */
const SEEN_MARGIN_MS = 3_600_000;
/** Local clock further than this from Code42's: warn (the windows use Code42's clock anyway). */
const SKEW_WARN_MS = 5_000;

export interface PollResult {
  /** `on_or_after` of the listing read (epoch ms, Code42's clock). */
  since: number;
  /** The checkpoint written at the end: Code42's time when the poll began. */
  checkpoint: number;
  /** Pages read in all (recent read + sweeps). */
  pages: number;
  /** Pages of the recent read (newest activity first, down to the last poll). */
  recentPages: number;
  /** Pages read by sweeps, by tier. */
  sweepPages: Record<string, number>;
  /** Sweep tiers that held back this poll to leave the request budget to forwarding. */
  yielded: string[];
  fetched: number;
  enqueued: number;
  alreadySeen: number;
  filtered: number;
  rejected: number;
  /** Change records emitted for sessions already forwarded. */
  changes: number;
  durationMs: number;
}

/** Counters the poller reports as it goes (metrics subscribe here). */
export interface PollerEvents {
  onSessions?(counts: { seen: number; enqueued: number; filtered: number; rejected: number }): void;
  /** After each poll: `skipped` when another process held the poll lock. */
  onPoll?(outcome: 'ok' | 'error' | 'skipped', durationMs: number, error?: unknown): void;
  /** After each poll: list pages read per purpose, tiers that yielded, change records emitted. */
  onReads?(reads: { recentPages: number; sweepPages: Record<string, number>; yielded: string[]; changes: number; clockOffsetMs: number | null }): void;
}

export interface PollerOptions {
  client: Pick<IncydrClient, 'listSessionsPage'> & { tokens?: { getToken(): Promise<string> } };
  redis: RedisConnection;
  /** The forward queue. */
  queue: Queue;
  keys: StateKeys;
  severities: readonly SeverityWord[];
  states: readonly SessionState[];
  firstFetchMs: number;
  /** Sessions that become visible up to this long after their latest activity are read by a sweep every lookback/8. */
  lookbackMs: number;
  logger: Logger;
  events?: PollerEvents;
  /** Local clock (durations, job timestamps); windows use `code42Clock`. */
  clock?: () => number;
  /** Code42's clock; give the same instance to the client (`serverClock`) so it sees every response's Date. */
  code42Clock?: Code42Clock;
  /** Sessions visible up to this long after they began are forwarded. @defaultValue 7 d */
  deepLookbackMs?: number;
  /** The whole deep window is read once per this interval, in slices spread over it. @defaultValue 8 h */
  sweepIntervalMs?: number;
  /** The poll interval (paces the sweeps' slices). @defaultValue 30 s */
  pollIntervalMs?: number;
  /** Extra depth of each recent read below the previous poll's time (index lag of fresh sessions). @defaultValue 5 min */
  recentMarginMs?: number;
  /** Most sweep pages one poll reads (keeps a poll inside its interval). @defaultValue 20 */
  maxSweepPagesPerPoll?: number;
  /** True when forwarding needs the Code42 budget now: sweeps hold back unless overdue. */
  shouldYield?: () => Promise<boolean>;
  /** Where change records go. @defaultValue the Redis stream `<prefix>:state:changes` */
  changeSink?: SessionChangeSink;
}

interface PageOutcome {
  /** Oldest end time on the page (the listing is newest first). */
  oldestEnd: number;
  /** No page after this one. */
  last: boolean;
  totalCount: number | undefined;
}

interface PollContext {
  /** Aborted when this poll must stop writing (lease lost, shutdown). */
  signal: AbortSignal | undefined;
  codeNow: number;
  polledAt: number;
  query: SessionQuery;
  pagesRead: Map<number, PageOutcome>;
  result: PollResult;
}

/**
 * Polls Code42 for sessions, reading one listing: every session that began since `listingFrom`
 * (DEEP_LOOKBACK back, on Code42's clock), every severity and state, newest end time first.
 *
 * - The **recent read** (every poll) reads it from the top down to the previous poll's time minus a
 *   margin: new sessions, and long sessions whose end time moved with new activity, within one interval.
 * - **Sweeps** continue down the same listing with a durable page cursor: the `recent` tier down to
 *   LOOKBACK every lookback/8, the `deep` tier to its end every SWEEP_INTERVAL; their pages are spread
 *   over the interval and held back while forwarding needs the request budget.
 *
 * Sessions inside the operator's filter that were never enqueued are enqueued (so a session that
 * escalates into the filter is forwarded once); sessions already enqueued are compared with their
 * snapshot and each change becomes a change record. Offsets are safe to resume: with no filter on the
 * query the listing only grows, and an insertion (new session, or one whose end time moved to the top)
 * only pushes unread items to later offsets, so a cursor re-reads a few items and never skips one.
 * Everything moves forward only after what it covers is stored: a crash repeats work, never skips it.
 */
export class Poller {
  private readonly state: PollState;
  private readonly rejected: RejectedLog;
  private readonly clock: () => number;
  private readonly intake: SessionIntake;
  private readonly tracker: SessionTracker;
  readonly code42Clock: Code42Clock;
  private readonly tiers: readonly SweepTier[];
  private lastSkewWarning = { at: 0, offset: 0 };
  private warnedNoDate = false;

  constructor(private readonly opts: PollerOptions) {
    this.state = new PollState(opts.redis, opts.keys);
    this.rejected = new RejectedLog(opts.redis, opts.keys);
    this.clock = opts.clock ?? Date.now;
    this.code42Clock = opts.code42Clock ?? new Code42Clock({ local: this.clock });
    this.intake = new SessionIntake({
      rejected: this.rejected,
      severities: opts.severities,
      states: opts.states,
      logger: opts.logger,
      clock: this.clock,
    });
    this.tracker = new SessionTracker({ redis: opts.redis, keys: opts.keys, ...(opts.changeSink ? { sink: opts.changeSink } : {}) });
    this.tiers = sweepTiers({ lookbackMs: opts.lookbackMs, sweepIntervalMs: this.sweepIntervalMs });
  }

  private get deepLookbackMs(): number {
    return this.opts.deepLookbackMs ?? 7 * 86_400_000;
  }

  private get sweepIntervalMs(): number {
    return this.opts.sweepIntervalMs ?? 8 * 3_600_000;
  }

  /**
   * Runs one poll. One poll at a time per deployment is the schedule's business (its lease); `signal`
   * aborts when that lease is lost or the daemon stops: then nothing more is enqueued and neither the
   * checkpoint nor a cursor moves (the next poll repeats the work).
   */
  async runOnce(run?: { signal: AbortSignal; stillHeld(): Promise<boolean> }): Promise<PollResult | null> {
    // Called outside the schedule (tools, tests): take the same lease the schedule would hold.
    if (!run) return this.runLeased();
    const startedAt = this.clock();
    try {
      const result = await this.poll(startedAt, run);
      await this.state.recordPoll({ ok: true, at: this.clock(), enqueued: result.enqueued });
      this.opts.events?.onPoll?.('ok', this.clock() - startedAt);
      return result;
    } catch (err) {
      if (err instanceof Code42ResponseError || (err instanceof Code42RequestError && err.foreignBody)) {
        // A page that is not what the API documents is bad input too: keep it where operators look.
        await this.rejected.record({ sessionId: null, reason: err.message, raw: null, at: this.clock() }).catch(() => undefined);
      }
      await this.state.recordPoll({ ok: false, at: this.clock(), error: (err as Error).message }).catch(() => undefined);
      this.opts.events?.onPoll?.('error', this.clock() - startedAt, err);
      throw err;
    }
  }

  /** One poll under the poll lease (the key the schedule holds); null when another process is polling. */
  private async runLeased(): Promise<PollResult | null> {
    const lock = new RedisLock(this.opts.redis, this.opts.keys.pollLock, 5_000);
    if (!(await lock.acquire())) {
      this.opts.logger.debug('another process is polling; skipping this turn');
      this.opts.events?.onPoll?.('skipped', 0);
      return null;
    }
    const signal = new AbortController().signal;
    try {
      return await this.runOnce({ signal, stillHeld: async () => true });
    } finally {
      await lock.release();
    }
  }

  /** Code42's time now; asks for a token first when no Code42 answer was seen yet (its Date header). */
  private async code42Now(): Promise<number> {
    let now = this.code42Clock.now();
    if (now === null && this.opts.client.tokens) {
      await this.opts.client.tokens.getToken();
      now = this.code42Clock.now();
    }
    if (now !== null) return now;
    if (!this.warnedNoDate) {
      this.warnedNoDate = true;
      this.opts.logger.warn('Code42 answers carry no Date header (a proxy removing it?): the poll windows use the local clock until one arrives');
    }
    return this.clock();
  }

  private warnOnSkew(): void {
    const offset = this.code42Clock.offsetMs();
    if (offset === null || Math.abs(offset) <= SKEW_WARN_MS) return;
    const now = this.clock();
    // Once, then again every 10 minutes or when the skew changes by more than the threshold.
    if (now - this.lastSkewWarning.at < 600_000 && Math.abs(offset - this.lastSkewWarning.offset) <= SKEW_WARN_MS) return;
    this.lastSkewWarning = { at: now, offset };
    this.opts.logger.warn(
      { clockOffsetMs: Math.round(offset) },
      `the local clock is ${Math.abs(Math.round(offset / 1000))} s ${offset < 0 ? 'ahead of' : 'behind'} Code42's; polling uses Code42's clock (its Date header), fix NTP on this host`,
    );
  }

  private async poll(startedAt: number, run: { signal: AbortSignal; stillHeld(): Promise<boolean> } | undefined): Promise<PollResult> {
    const signal = run?.signal;
    const { logger } = this.opts;
    const codeNow = await this.code42Now();
    this.warnOnSkew();
    const checkpoint = await this.state.getCheckpoint();
    const position = await this.state.loadSweep();
    this.startCycles(position, codeNow);
    await this.state.saveSweep(position);
    const since = position.listingFrom as number;
    const ctx: PollContext = {
      signal,
      codeNow,
      polledAt: startedAt,
      query: { onOrAfter: since, severities: [], states: [], order: 'end_time_desc' },
      pagesRead: new Map(),
      result: {
        since,
        checkpoint: codeNow,
        pages: 0,
        recentPages: 0,
        sweepPages: {},
        yielded: [],
        fetched: 0,
        enqueued: 0,
        alreadySeen: 0,
        filtered: 0,
        rejected: 0,
        changes: 0,
        durationMs: 0,
      },
    };
    logger.debug({ since: new Date(since).toISOString(), firstPoll: checkpoint === null }, 'poll started');

    // Recent read: from the top down to the previous poll (all of it on the very first poll).
    const floor = checkpoint === null ? Number.NEGATIVE_INFINITY : checkpoint - (this.opts.recentMarginMs ?? 300_000);
    let page = 0;
    let outcome: PageOutcome;
    for (;;) {
      outcome = await this.readPage(ctx, page);
      page += 1;
      if (outcome.last || outcome.oldestEnd < floor) break;
    }
    ctx.result.recentPages = page;
    signal?.throwIfAborted();
    // A sweep whose cursor lies inside what the recent read just covered moves past it for free.
    for (const tier of this.tiers) {
      const cursor = position.tiers[tier.name] as SweepCursor;
      if (cursor.done || cursor.page > page) continue;
      cursor.page = page;
      const tierFloor = tier.floorMs === null ? null : cursor.start - tier.floorMs;
      if (outcome.last || (tierFloor !== null && outcome.oldestEnd < tierFloor)) {
        cursor.done = true;
        cursor.lastPages = cursor.page;
      }
    }
    await this.state.saveSweep(position);
    await this.sweep(ctx, position);

    // A poll that lost its lease (Redis lost its data meanwhile, say) writes no checkpoint.
    if (run && !(await run.stillHeld())) throw new Error('the poll lost its lease before writing its checkpoint; the next poll repeats it');
    await this.state.advanceCheckpoint(codeNow);
    const cutoff = since - SEEN_MARGIN_MS;
    await this.state.pruneSeenAndTracked(cutoff);
    await this.rejected.pruneIds(cutoff);
    const result = ctx.result;
    result.durationMs = this.clock() - startedAt;
    this.opts.events?.onReads?.({
      recentPages: result.recentPages,
      sweepPages: result.sweepPages,
      yielded: result.yielded,
      changes: result.changes,
      clockOffsetMs: this.code42Clock.offsetMs(),
    });
    // A poll that found nothing new is routine: at debug, so an idle daemon's log stays quiet.
    logger[result.enqueued > 0 || result.rejected > 0 || result.changes > 0 ? 'info' : 'debug'](
      {
        since: new Date(since).toISOString(),
        checkpoint: new Date(codeNow).toISOString(),
        pages: result.pages,
        recentPages: result.recentPages,
        sweepPages: result.sweepPages,
        ...(result.yielded.length > 0 ? { yielded: result.yielded } : {}),
        fetched: result.fetched,
        enqueued: result.enqueued,
        alreadySeen: result.alreadySeen,
        filtered: result.filtered,
        rejected: result.rejected,
        changes: result.changes,
        durationMs: result.durationMs,
      },
      'poll completed',
    );
    return result;
  }

  /** Starts the cycles that are due; a new deep cycle moves the listing (and restarts every cursor on it). */
  private startCycles(position: SweepPosition, codeNow: number): void {
    if (position.origin === null) position.origin = codeNow - this.opts.firstFetchMs;
    const deep = position.tiers.deep;
    if (!deep || position.listingFrom === null || (deep.done && codeNow >= deep.start + this.sweepIntervalMs)) {
      // One more SWEEP_INTERVAL of depth: a session visible DEEP_LOOKBACK after it began still lies
      // inside the listing of the cycle that first runs after it became visible.
      position.listingFrom = Math.max(position.origin, codeNow - this.deepLookbackMs - this.sweepIntervalMs);
      for (const tier of this.tiers) {
        const old = position.tiers[tier.name];
        position.tiers[tier.name] = { start: codeNow, page: 0, done: false, lastPages: old ? (old.done ? old.lastPages || old.page : old.lastPages) : 0 };
      }
      return;
    }
    for (const tier of this.tiers) {
      const cursor = position.tiers[tier.name];
      if (!cursor || (cursor.done && codeNow >= cursor.start + tier.periodMs)) {
        position.tiers[tier.name] = { start: codeNow, page: 0, done: false, lastPages: cursor?.lastPages ?? 0 };
      }
    }
  }

  private async sweep(ctx: PollContext, position: SweepPosition): Promise<void> {
    const maxPages = this.opts.maxSweepPagesPerPoll ?? 20;
    for (const tier of this.tiers) {
      const cursor = position.tiers[tier.name] as SweepCursor;
      if (cursor.done) continue;
      const overdue = ctx.codeNow >= cursor.start + tier.periodMs;
      if (!overdue && this.opts.shouldYield && (await this.opts.shouldYield())) {
        ctx.result.yielded.push(tier.name);
        continue;
      }
      const first = ctx.pagesRead.get(0);
      const estimate = tier.floorMs === null && first?.totalCount !== undefined ? Math.ceil(first.totalCount / SESSIONS_PAGE_SIZE) : cursor.lastPages;
      const due = sweepPagesDue({
        nextPage: cursor.page,
        estimatedPages: estimate,
        msLeft: cursor.start + tier.periodMs - ctx.codeNow,
        pollIntervalMs: this.opts.pollIntervalMs ?? 30_000,
        maxPages,
      });
      const tierFloor = tier.floorMs === null ? null : cursor.start - tier.floorMs;
      for (let n = 0; n < due && !cursor.done; n++) {
        const fresh = !ctx.pagesRead.has(cursor.page);
        const outcome = await this.readPage(ctx, cursor.page);
        if (fresh) ctx.result.sweepPages[tier.name] = (ctx.result.sweepPages[tier.name] ?? 0) + 1;
        cursor.page += 1;
        if (outcome.last || (tierFloor !== null && outcome.oldestEnd < tierFloor)) {
          cursor.done = true;
          cursor.lastPages = cursor.page;
          this.opts.logger.info({ tier: tier.name, pages: cursor.page, startedAt: new Date(cursor.start).toISOString() }, 'sweep cycle completed');
        }
        ctx.signal?.throwIfAborted();
        await this.state.saveSweep(position);
      }
    }
  }

  /** Reads one page of the listing (once per poll) and handles its sessions. */
  private async readPage(ctx: PollContext, pageNumber: number): Promise<PageOutcome> {
    const known = ctx.pagesRead.get(pageNumber);
    if (known) return known;
    const page = await this.opts.client.listSessionsPage(ctx.query, pageNumber);
    // A page without totalCount (null) ends only by being short, as the Incydr SDK pages.
    const totalCount = page.totalCount ?? undefined;
    ctx.result.pages += 1;
    ctx.result.fetched += page.items.length;
    let oldestEnd = Number.POSITIVE_INFINITY;
    for (const item of page.items) {
      const end = endTimeOf(item);
      if (end !== undefined && end < oldestEnd) oldestEnd = end;
    }
    const counts = await this.handlePage(page.items, ctx);
    const outcome: PageOutcome = {
      oldestEnd: page.items.length === 0 ? Number.NEGATIVE_INFINITY : oldestEnd,
      last: page.items.length < SESSIONS_PAGE_SIZE || (totalCount !== undefined && pageNumber * SESSIONS_PAGE_SIZE + page.items.length >= totalCount),
      totalCount,
    };
    ctx.pagesRead.set(pageNumber, outcome);
    this.opts.events?.onSessions?.({ seen: page.items.length, enqueued: counts.enqueued, filtered: counts.filtered, rejected: counts.rejected });
    return outcome;
  }

  private async handlePage(items: readonly unknown[], ctx: PollContext): Promise<{ enqueued: number; filtered: number; rejected: number }> {
    const { valid, all, filtered, rejected } = await this.intake.accept(items);
    for (const s of all.values()) this.code42Clock.observeDataTime(s.lastUpdated ?? s.endTime ?? s.beginTime);
    const unseen = new Set(await this.state.unseen([...all.keys()]));
    const fresh: Session[] = [];
    const known: Session[] = [];
    for (const s of all.values()) {
      if (!unseen.has(s.sessionId)) known.push(s);
      else if (valid.has(s.sessionId)) fresh.push(s);
    }
    // The add resolves once the jobs are stored in Redis; then the snapshot, and only then the seen mark.
    ctx.signal?.throwIfAborted();
    await enqueueSessions(this.opts.queue, fresh, ctx.polledAt);
    await this.tracker.track(fresh);
    await this.state.markSeen(fresh.map((s) => ({ sessionId: s.sessionId, beginTime: s.beginTime })));
    for (const s of fresh) this.opts.logger.debug({ alertId: s.sessionId }, 'session enqueued');
    const changes = await this.tracker.observe(known, ctx.codeNow);
    const r = ctx.result;
    r.enqueued += fresh.length;
    r.alreadySeen += valid.size - fresh.length;
    r.filtered += filtered;
    r.rejected += rejected;
    r.changes += changes;
    return { enqueued: fresh.length, filtered, rejected };
  }
}

/** End time of a raw listing item (its begin time when it has none); undefined when neither is a number. */
function endTimeOf(item: unknown): number | undefined {
  if (!item || typeof item !== 'object') return undefined;
  const { endTime, beginTime } = item as { endTime?: unknown; beginTime?: unknown };
  if (typeof endTime === 'number' && Number.isFinite(endTime)) return endTime;
  if (typeof beginTime === 'number' && Number.isFinite(beginTime)) return beginTime;
  return undefined;
}
