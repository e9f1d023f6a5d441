import type { Queue } from 'bullmq';
import type { RedisConnection } from '../infra/redis.js';
import { Code42Clock } from '../code42/code42-clock.js';
import { SESSIONS_PAGE_SIZE, type IncydrClient, type SessionQuery } from '../code42/incydr-client.js';
import { Code42RequestError, Code42ResponseError } from '../code42/errors.js';
import { currentSeverity, currentStateNames, type Session } from '../code42/schemas.js';
import type { SessionState, SeverityWord } from '../code42/vocabulary.js';
import type { Logger } from '../infra/logger.js';
import type { StateKeys } from '../store/keys.js';
import { SessionIntake, enqueueSessions } from './session-intake.js';
import { PollState, requestWindowReread, type SweepCursor, type SweepPosition } from './poll-state.js';
import { RedisLock } from '../jobs/redis-lock.js';
import { RejectedLog } from './rejected-log.js';
import type { SessionChangeSink } from './session-change.js';
import { SessionTracker } from './session-tracker.js';
import { sweepTiers, sweepPagesDue } from './sweep-plan.js';
import { CountIndex, type CountFamily } from './count-index.js';
import { CountWatch, type CountWatchState, type LookFamily } from './count-watch.js';
import type { SearchLimits, Slice } from './count-search.js';
import { describeTrouble, listingPageCap, repeatsPreviousPage, type ListingTrouble, type ListingTroubleKind } from './listing-bounds.js';

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
  /** Count probes (pages of one item) spent by the count detection. */
  countProbes: number;
  /** Calls reading what the counts pointed at: pages of begin-time slices, sessions read one by one. */
  countPages: number;
  /** Whether the count detection ran: `warming` until the whole window was read once. */
  countState: CountWatchState;
  /** The filtered listing this poll read first for its count (`out`, `sev`), or null: the unfiltered one. */
  countLook: LookFamily | null;
  /** Sweep tiers that held back this poll to leave the request budget to forwarding. */
  yielded: string[];
  fetched: number;
  enqueued: number;
  alreadySeen: number;
  filtered: number;
  rejected: number;
  /** Change records emitted for sessions already forwarded. */
  changes: number;
  /** Sessions recorded as visible at the first start and older than FIRST_FETCH (not forwarded). */
  imported: number;
  /** Why a listing read stopped before its end this poll; null when every one ended. */
  listingTrouble: string | null;
  /** The checkpoint moved (the recent read reached the previous poll, and Redis kept its data meanwhile). */
  checkpointMoved: boolean;
  durationMs: number;
}

/** Counters the poller reports as it goes (metrics subscribe here). */
export interface PollerEvents {
  onSessions?(counts: { seen: number; enqueued: number; filtered: number; rejected: number }): void;
  /** After each poll: `skipped` when another process held the poll lock. */
  onPoll?(outcome: 'ok' | 'error' | 'skipped', durationMs: number, error?: unknown): void;
  /** After each poll: list pages read per purpose, tiers that yielded, change records emitted. */
  onReads?(reads: {
    recentPages: number;
    sweepPages: Record<string, number>;
    countProbes?: number;
    countPages?: number;
    countState?: CountWatchState;
    /** The count look this poll made, and whether its count matched. */
    countLook?: { family: LookFamily; matched: boolean };
    listingTrouble?: boolean;
    yielded: string[];
    changes: number;
    clockOffsetMs: number | null;
  }): void;
}

export interface PollerOptions {
  client: Pick<IncydrClient, 'listSessionsPage' | 'getSession'> & { tokens?: { getToken(): Promise<string> } };
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
  /** How often the state and severity counts are probed (count detection). @defaultValue 4 min */
  probeIntervalMs?: number;
  /** Limits of one count search (probes, slices). */
  countSearch?: SearchLimits;
  /** Most pages a poll reads of a whole-window read at once (first start, Redis lost its data). @defaultValue 3 × maxSweepPagesPerPoll */
  maxRushPagesPerPoll?: number;
}

interface PageOutcome {
  /** Oldest end time on the page (the listing is newest first). */
  oldestEnd: number;
  /** No page after this one. */
  last: boolean;
  totalCount: number | undefined;
}

/** One query read during a poll: its pages (read once whoever asks), bounded. */
interface Listing {
  name: string;
  query: SessionQuery;
  pages: Map<number, PageOutcome>;
  /** Item ids per page (a page that repeats the one before means the server does not page). */
  ids: Map<number, string[]>;
  /** Pages beyond this are not read this poll (totalCount, or the window, says there are no more). */
  cap: number;
  stopped: boolean;
}

interface PollContext {
  /** Aborted when this poll must stop writing (lease lost, shutdown). */
  signal: AbortSignal | undefined;
  codeNow: number;
  polledAt: number;
  listings: Map<string, Listing>;
  /** Redis lost its data: every session in the filter is enqueued again, seen or not. */
  rereading: boolean;
  /** The first start's rush is running: old sessions found are imported. */
  importing: boolean;
  /** FIRST_FETCH's limit: sessions that began before it, visible at the first start, are not forwarded. */
  origin: number;
  /** Sessions that began before this have left the window (a deep cycle may still list them). */
  windowFrom: number;
  troubles: ListingTrouble[];
  /** Names of the listings of more than one page read to their end this poll. */
  ended: Set<string>;
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
  private readonly counts: CountIndex;
  private readonly watch: CountWatch;
  private readonly filterStates: readonly string[];
  /** Listings that stopped ending, while it lasts (one log line per episode), by name. */
  private readonly listingTroubles = new Map<string, { since: number; detail: string }>();
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
    this.filterStates = opts.states;
    this.counts = new CountIndex(opts.redis, opts.keys);
    this.watch = new CountWatch({
      index: this.counts,
      count: async (query) => (await opts.client.listSessionsPage({ ...query, pageSize: 1 }, 0)).totalCount,
      filterStates: opts.states,
      filterSeverities: this.intake.severities,
      ...(opts.probeIntervalMs !== undefined ? { probeIntervalMs: opts.probeIntervalMs } : {}),
      ...(opts.countSearch ? { limits: opts.countSearch } : {}),
    });
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
    // The state marker as the poll begins: if Redis loses its data meanwhile, no checkpoint is written.
    const marker = await this.state.markerValue();
    const codeNow = await this.code42Now();
    this.warnOnSkew();
    const checkpoint = await this.state.getCheckpoint();
    const reread = await this.state.rereadRequest();
    const position = await this.state.loadSweep();
    const rush = this.startCycles(position, codeNow, checkpoint === null, reread);
    // A new re-read after a loss: what the first start imported is forgotten with the rest (see startCycles).
    if (rush && reread !== null) await this.counts.forgetImported();
    await this.state.saveSweep(position);
    const since = position.listingFrom as number;
    const ctx: PollContext = {
      signal,
      codeNow,
      polledAt: startedAt,
      listings: new Map(),
      rereading: reread !== null,
      importing: position.importing,
      origin: position.origin ?? 0,
      windowFrom: (position.listingFrom as number) - SEEN_MARGIN_MS,
      troubles: [],
      ended: new Set(),
      result: {
        since,
        checkpoint: codeNow,
        pages: 0,
        recentPages: 0,
        sweepPages: {},
        countProbes: 0,
        countPages: 0,
        countState: 'warming',
        countLook: null,
        yielded: [],
        fetched: 0,
        enqueued: 0,
        alreadySeen: 0,
        filtered: 0,
        rejected: 0,
        changes: 0,
        imported: 0,
        listingTrouble: null,
        checkpointMoved: false,
        durationMs: 0,
      },
    };
    logger.debug({ since: new Date(since).toISOString(), firstPoll: checkpoint === null, rereading: ctx.rereading }, 'poll started');
    const knownInWindow = await this.counts.known('all', { from: since, to: Number.MAX_SAFE_INTEGER });

    // The poll's first read. Count detection runs once the whole window was read with the index kept, and
    // while pages carry totalCount; then some polls look first at a filtered listing, for its count
    // (count-watch.ts): when that count matches, that page was this poll's read. Otherwise the unfiltered
    // recent read follows, and a search where its count, or the look's, still differs.
    const window = this.watch.window(since, codeNow);
    const tops: Partial<Record<CountFamily, number>> = {};
    let recentComplete = false;
    const look = position.countsArmed && position.countsLive ? this.watch.lookDue(codeNow, position.probedAt) : null;
    ctx.result.countLook = look;
    if (look) {
      const listing = this.listing(ctx, `recent_${look}`, this.watch.queryFor(look, window), knownInWindow);
      const outcome = await this.readPage(ctx, listing, 0);
      ctx.result.recentPages += 1;
      if (outcome?.totalCount !== undefined) tops[look] = outcome.totalCount;
    }
    signal?.throwIfAborted();
    const lookMatched = look !== null && tops[look] !== undefined && (await this.watch.matches(look, window, tops[look] as number));
    if (lookMatched) {
      ctx.result.countState = 'active';
    } else {
      const recent = await this.recentRead(ctx, position, checkpoint, since, knownInWindow, tops);
      recentComplete = recent.complete;
      if (recent.pages > 0 && (tops.all === undefined || (look !== null && tops[look] === undefined))) ctx.result.countState = 'no_total_count';
      else if (position.countsArmed && tops.all !== undefined) {
        ctx.result.countState = 'active';
        const round = await this.watch.round({
          codeNow,
          from: since,
          tops,
          probedAt: position.probedAt,
          readSlice: (slice, query) => this.readSlice(ctx, slice, query),
          reread: (ids) => this.reread(ctx, ids),
        });
        ctx.result.countProbes = round.probes;
        if (round.noCount) ctx.result.countState = 'no_total_count';
        if (round.differed.length > 0) logger.debug({ families: round.differed, slices: round.slices, probes: round.probes }, 'counts differed: slices read whole');
        await this.state.saveSweep(position);
      }
    }

    position.countsLive = ctx.result.countState === 'active';
    // Kept even when no page moves a cursor: the next poll's look and the sweeps' cadence depend on it.
    await this.state.saveSweep(position);
    await this.sweep(ctx, position, position.countsLive);
    // The re-read is served once its rush has read the whole window.
    if (reread !== null && position.tiers.deep?.serves === reread && position.tiers.deep.done) await this.state.clearReread(reread);

    // The checkpoint moves only over what the recent read covered, and only if Redis kept its data meanwhile.
    if (recentComplete) {
      // A poll that lost its lease (another replica polls now, or Redis lost it) writes no checkpoint.
      if (run && !(await run.stillHeld())) throw new Error('the poll lost its lease before writing its checkpoint; the next poll repeats it');
      const moved = await this.state.advanceCheckpointIfMarker(codeNow, marker);
      ctx.result.checkpointMoved = moved === 'moved';
      if (moved === 'lost') {
        await requestWindowReread(this.opts.redis, this.opts.keys, codeNow);
        logger.warn('Redis lost its data while this poll ran: no checkpoint written; the whole window is read again');
      }
    }
    const cutoff = ctx.windowFrom;
    await this.state.pruneSeenAndTracked(cutoff);
    await this.counts.prune(cutoff);
    await this.rejected.pruneIds(cutoff);
    await this.reportListingHealth(ctx);
    const result = ctx.result;
    result.durationMs = this.clock() - startedAt;
    this.opts.events?.onReads?.({
      recentPages: result.recentPages,
      sweepPages: result.sweepPages,
      countProbes: result.countProbes,
      countPages: result.countPages,
      countState: result.countState,
      ...(result.countLook ? { countLook: { family: result.countLook, matched: lookMatched } } : {}),
      listingTrouble: result.listingTrouble !== null,
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
        countProbes: result.countProbes,
        countPages: result.countPages,
        countState: result.countState,
        ...(result.countLook ? { countLook: result.countLook } : {}),
        ...(result.yielded.length > 0 ? { yielded: result.yielded } : {}),
        fetched: result.fetched,
        enqueued: result.enqueued,
        alreadySeen: result.alreadySeen,
        filtered: result.filtered,
        rejected: result.rejected,
        changes: result.changes,
        ...(result.imported > 0 ? { imported: result.imported } : {}),
        durationMs: result.durationMs,
      },
      'poll completed',
    );
    return result;
  }

  private get recentMarginMs(): number {
    return this.opts.recentMarginMs ?? 300_000;
  }

  private get pollIntervalMs(): number {
    return this.opts.pollIntervalMs ?? 30_000;
  }

  /**
   * The recent read: the unfiltered listing from the top down to the previous poll (the rest of the
   * window, on a first poll or after a loss, is the deep sweep's rush). Its first page's `totalCount` is
   * the `all` count. `complete` when it reached the previous poll (the checkpoint may move).
   */
  private async recentRead(
    ctx: PollContext,
    position: SweepPosition,
    checkpoint: number | null,
    since: number,
    knownInWindow: number,
    tops: Partial<Record<CountFamily, number>>,
  ): Promise<{ complete: boolean; pages: number }> {
    const { codeNow } = ctx;
    const floor = checkpoint === null ? codeNow - this.recentMarginMs - this.pollIntervalMs : checkpoint - this.recentMarginMs;
    const main = this.listing(ctx, 'recent', { onOrAfter: since, severities: [], states: [], order: 'end_time_desc' }, knownInWindow);
    let page = 0;
    let last: PageOutcome | null = null;
    let complete = false;
    for (;;) {
      const outcome = await this.readPage(ctx, main, page);
      if (!outcome) break;
      last = outcome;
      page += 1;
      if (outcome.last || outcome.oldestEnd < floor) {
        complete = true;
        break;
      }
    }
    ctx.result.recentPages += page;
    ctx.signal?.throwIfAborted();
    const allCount = main.pages.get(0)?.totalCount;
    if (allCount !== undefined) tops.all = allCount;
    // The recent sweep reads the same listing: a cursor inside what the recent read just covered moves past it for free.
    const recentTier = position.tiers.recent;
    if (recentTier && recentTier.before === undefined && !recentTier.done && recentTier.page <= page && last) {
      recentTier.page = page;
      if (last.last || last.oldestEnd < recentTier.start - this.opts.lookbackMs) {
        recentTier.done = true;
        recentTier.lastPages = recentTier.page;
      }
    }
    await this.state.saveSweep(position);
    return { complete, pages: page };
  }

  /**
   * Moves the listing every SWEEP_INTERVAL and starts the cycles that are due. A first start, a lost
   * checkpoint or a re-read request (Redis lost its data) starts a *rush*: the deep sweep reads the
   * whole window at once, as fast as the request budget allows.
   */
  private startCycles(position: SweepPosition, codeNow: number, noCheckpoint: boolean, reread: string | null): boolean {
    let rush = false;
    if (reread !== null) {
      // After a loss nothing tells what was visible at the first start: the limit of FIRST_FETCH is gone.
      position.origin ??= 0;
      position.importing = false;
      position.countsArmed = false;
      position.countsLive = false;
      rush = position.tiers.deep?.serves !== reread;
    } else if (position.origin === null) {
      position.origin = codeNow - this.opts.firstFetchMs;
      position.importing = true;
      position.countsArmed = false;
      position.countsLive = false;
      rush = true;
    } else if (noCheckpoint && !position.tiers.deep?.rush) {
      rush = true;
    }
    if (rush || position.listingFrom === null || position.listingAt === null || codeNow >= position.listingAt + this.sweepIntervalMs) {
      // One more SWEEP_INTERVAL of depth: a session visible DEEP_LOOKBACK after it began still lies
      // inside the listing while it moves.
      position.listingFrom = codeNow - this.deepLookbackMs - this.sweepIntervalMs;
      position.listingAt = codeNow;
      const old = position.tiers.recent;
      // A rush reads everything the recent sweep would: its cycle counts as done.
      position.tiers.recent = { start: codeNow, page: 0, done: rush, lastPages: old ? (old.done ? old.lastPages || old.page : old.lastPages) : 0, from: position.listingFrom, before: codeNow };
    }
    if (rush) {
      const old = position.tiers.deep;
      // The rush reads the listing the recent read reads (no `before`), and shares its pages.
      position.tiers.deep = { start: codeNow, page: 0, done: false, lastPages: old?.lastPages ?? 0, from: position.listingFrom, rush: true, ...(reread !== null ? { serves: reread } : {}) };
      return true;
    }
    const tiers = sweepTiers({ lookbackMs: this.opts.lookbackMs, sweepIntervalMs: this.sweepIntervalMs, deepLookbackMs: this.deepLookbackMs, countsActive: position.countsLive });
    for (const tier of tiers) {
      const cursor = position.tiers[tier.name];
      if (cursor && !(cursor.done && codeNow >= cursor.start + tier.periodMs)) continue;
      // Each cycle reads its own listing: sessions that begin later are the recent reads' (so a cycle spread
      // over its interval does not grow with them and re-read them), and with no filter nothing leaves it.
      position.tiers[tier.name] = { start: codeNow, page: 0, done: false, lastPages: cursor?.lastPages ?? 0, from: position.listingFrom, before: codeNow };
    }
    return false;
  }

  private async sweep(ctx: PollContext, position: SweepPosition, countsActive: boolean): Promise<void> {
    const maxPages = this.opts.maxSweepPagesPerPoll ?? 20;
    const tiers = sweepTiers({ lookbackMs: this.opts.lookbackMs, sweepIntervalMs: this.sweepIntervalMs, deepLookbackMs: this.deepLookbackMs, countsActive });
    for (const tier of tiers) {
      const cursor = position.tiers[tier.name];
      if (!cursor || cursor.done) continue;
      const rush = cursor.rush === true;
      const overdue = ctx.codeNow >= cursor.start + tier.periodMs;
      if (!rush && !overdue && this.opts.shouldYield && (await this.opts.shouldYield())) {
        ctx.result.yielded.push(tier.name);
        continue;
      }
      const from = cursor.from ?? (position.listingFrom as number);
      const query: SessionQuery = { onOrAfter: from, ...(cursor.before !== undefined ? { before: cursor.before } : {}), severities: [], states: [], order: 'end_time_desc' };
      const known = await this.counts.known('all', { from, to: cursor.before ?? Number.MAX_SAFE_INTEGER });
      const listing = this.listing(ctx, rush ? 'recent' : `sweep_${tier.name}`, query, known);
      const estimate = Math.max(cursor.lastPages, tier.name === 'deep' ? Math.ceil(known / SESSIONS_PAGE_SIZE) : 0, 1);
      const due = rush
        ? (this.opts.maxRushPagesPerPoll ?? 3 * maxPages)
        : sweepPagesDue({ nextPage: cursor.page, estimatedPages: estimate, elapsedMs: ctx.codeNow - cursor.start, periodMs: tier.periodMs, pollIntervalMs: this.pollIntervalMs, maxPages });
      const tierFloor = tier.floorMs === null ? null : cursor.start - tier.floorMs;
      for (let n = 0; n < due && !cursor.done; n++) {
        const fresh = !listing.pages.has(cursor.page);
        const outcome = await this.readPage(ctx, listing, cursor.page);
        if (!outcome) {
          // The listing does not end: this cycle stops here (reported; counts stay unarmed, a first start's
          // import ends); the next one starts on schedule.
          cursor.done = true;
          cursor.lastPages = cursor.page;
          if (cursor.rush) {
            position.importing = false;
            ctx.importing = false;
          }
          await this.state.saveSweep(position);
          break;
        }
        ctx.signal?.throwIfAborted();
        if (fresh) ctx.result.sweepPages[tier.name] = (ctx.result.sweepPages[tier.name] ?? 0) + 1;
        cursor.page += 1;
        if (outcome.last || (tierFloor !== null && outcome.oldestEnd < tierFloor)) this.finishCycle(ctx, position, tier.name, cursor);
        await this.state.saveSweep(position);
      }
    }
  }

  private finishCycle(ctx: PollContext, position: SweepPosition, tier: string, cursor: SweepCursor): void {
    cursor.done = true;
    cursor.lastPages = cursor.page;
    if (tier === 'deep') {
      // The whole window was read with the index kept: counts can be compared from now on. (A cycle begun
      // by an earlier version, without its own listing, may have read part of it before the index existed.)
      if (cursor.from !== undefined) position.countsArmed = true;
      if (cursor.rush) {
        // The rush read the recent sweep's listing to its end: that cycle is covered too.
        const recent = position.tiers.recent;
        if (recent && !recent.done && cursor.from === position.listingFrom) {
          recent.done = true;
          recent.lastPages = Math.max(1, recent.page);
        }
        position.importing = false;
        ctx.importing = false;
      }
    }
    this.opts.logger.info({ tier, pages: cursor.page, rush: cursor.rush === true, startedAt: new Date(cursor.start).toISOString() }, 'sweep cycle completed');
  }

  /** A read of `query` for this poll: pages are read once per poll whoever asks. */
  private listing(ctx: PollContext, name: string, query: SessionQuery, knownInWindow: number): Listing {
    const key = JSON.stringify([query.onOrAfter, query.before ?? null, query.states, query.severities]);
    let listing = ctx.listings.get(key);
    if (!listing) {
      listing = { name, query, pages: new Map(), ids: new Map(), cap: listingPageCap({ totalCount: undefined, knownInWindow, pageSize: SESSIONS_PAGE_SIZE, room: 20 }), stopped: false };
      ctx.listings.set(key, listing);
    }
    return listing;
  }

  /** Reads every page of a begin-time slice (count detection; unfiltered unless `query` says otherwise): its count and the ids read. */
  private async readSlice(ctx: PollContext, slice: Slice, query?: SessionQuery): Promise<{ count: number | null; ids: Set<string> }> {
    const known = await this.counts.known('all', slice);
    const listing = this.listing(ctx, 'count_read', query ?? { onOrAfter: slice.from, before: slice.to, severities: [], states: [], order: 'end_time_desc' }, known);
    let first: PageOutcome | null = null;
    for (let page = 0; ; page++) {
      const fresh = !listing.pages.has(page);
      const outcome = await this.readPage(ctx, listing, page);
      if (!outcome) break;
      if (fresh) ctx.result.countPages += 1;
      first ??= outcome;
      if (outcome.last) break;
    }
    return { count: first?.totalCount ?? null, ids: new Set([...listing.ids.values()].flat()) };
  }

  /** Reads sessions one by one (count detection: those that left a filtered listing a slice was read with). */
  private async reread(ctx: PollContext, ids: readonly string[]): Promise<void> {
    for (const id of ids) {
      ctx.signal?.throwIfAborted();
      const session = await this.opts.client.getSession(id);
      ctx.result.pages += 1;
      ctx.result.countPages += 1;
      // Gone from Code42: the index keeps it until it leaves the window (the count's gap says so meanwhile).
      if (session) await this.handlePage([session], ctx);
    }
  }

  /**
   * Reads one page of a listing (once per poll) and handles its sessions. Null when the listing does not
   * end (a page that repeats the previous one, or past the page cap): nothing of it is handled and the
   * trouble is reported.
   */
  private async readPage(ctx: PollContext, listing: Listing, pageNumber: number): Promise<PageOutcome | null> {
    const known = listing.pages.get(pageNumber);
    if (known) return known;
    if (listing.stopped) return null;
    if (pageNumber >= listing.cap) {
      this.stopListing(ctx, listing, 'page_cap', pageNumber);
      return null;
    }
    const page = await this.opts.client.listSessionsPage(listing.query, pageNumber);
    // A page without totalCount (null) ends only by being short, as the Incydr SDK pages.
    const totalCount = page.totalCount ?? undefined;
    ctx.result.pages += 1;
    const ids = page.items.map(idOf);
    if (repeatsPreviousPage(listing.ids.get(pageNumber - 1), ids, SESSIONS_PAGE_SIZE)) {
      this.stopListing(ctx, listing, 'repeats', pageNumber);
      return null;
    }
    listing.ids.set(pageNumber, ids);
    if (totalCount !== undefined) listing.cap = listingPageCap({ totalCount, knownInWindow: 0, pageSize: SESSIONS_PAGE_SIZE });
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
    listing.pages.set(pageNumber, outcome);
    // Paging works again once a listing of more than one page reaches its end.
    if (outcome.last && pageNumber >= 1) ctx.ended.add(listing.name);
    this.opts.events?.onSessions?.({ seen: page.items.length, enqueued: counts.enqueued, filtered: counts.filtered, rejected: counts.rejected });
    return outcome;
  }

  private stopListing(ctx: PollContext, listing: Listing, kind: ListingTroubleKind, page: number): void {
    listing.stopped = true;
    const trouble: ListingTrouble = { listing: listing.name, kind, page, detail: describeTrouble({ listing: listing.name, kind, page }) };
    ctx.troubles.push(trouble);
  }

  /**
   * One log line per listing that stops ending (not one per poll); /readyz degraded until a read of that
   * listing reaches its end again.
   */
  private async reportListingHealth(ctx: PollContext): Promise<void> {
    for (const t of ctx.troubles) {
      if (!this.listingTroubles.has(t.listing)) {
        this.listingTroubles.set(t.listing, { since: ctx.codeNow, detail: t.detail });
        this.opts.logger.error({ listing: t.listing, kind: t.kind, page: t.page }, t.detail);
      }
    }
    if (ctx.ended.size > 0 && ctx.troubles.length === 0 && this.listingTroubles.size > 0) {
      this.opts.logger.info({ listings: [...this.listingTroubles.keys()], ended: [...ctx.ended] }, 'GET /v1/sessions ends again');
      this.listingTroubles.clear();
    }
    const first = [...this.listingTroubles.values()][0];
    ctx.result.listingTrouble = ctx.troubles[0]?.detail ?? first?.detail ?? null;
    await this.state.recordListingHealth(first ? { detail: first.detail, since: first.since } : null);
  }

  private async handlePage(items: readonly unknown[], ctx: PollContext): Promise<{ enqueued: number; filtered: number; rejected: number }> {
    const accepted = await this.intake.accept(items);
    const { filtered, rejected } = accepted;
    for (const s of accepted.all.values()) this.code42Clock.observeDataTime(s.lastUpdated ?? s.endTime ?? s.beginTime);
    // A deep cycle that started before the window last moved still lists sessions that have left it: not ours any more.
    const inWindow = <T extends Session>(m: Map<string, T>): Map<string, T> => new Map([...m].filter(([, s]) => s.beginTime >= ctx.windowFrom));
    const all = inWindow(accepted.all);
    const valid = inWindow(accepted.valid);
    const ids = [...all.keys()];
    const unseen = new Set(await this.state.unseen(ids));
    // Sessions that began before FIRST_FETCH at the first start: read during the first start's rush, they
    // were visible then (imported, never forwarded); read later, only the ones imported stay out.
    const old = [...all.values()].filter((s) => s.beginTime < ctx.origin);
    if (ctx.importing) {
      const toImport = old.filter((s) => unseen.has(s.sessionId));
      await this.counts.markImported(toImport.map((s) => ({ sessionId: s.sessionId, beginTime: s.beginTime })));
      ctx.result.imported += toImport.length;
    }
    const imported = ctx.importing ? new Set(old.map((s) => s.sessionId)) : await this.counts.importedAmong(old.map((s) => s.sessionId));
    const fresh: Session[] = [];
    const known: Session[] = [];
    for (const s of all.values()) {
      if (imported.has(s.sessionId) && unseen.has(s.sessionId)) continue;
      if (!unseen.has(s.sessionId)) {
        known.push(s);
        // After a loss, a seen mark may have been written by a poll in flight across it (its job gone): enqueue
        // again (the job id, the ledger and the search in XSOAR keep it from being created twice).
        if (ctx.rereading && valid.has(s.sessionId)) fresh.push(s);
      } else if (valid.has(s.sessionId)) fresh.push(s);
    }
    // The add resolves once the jobs are stored in Redis; then the snapshot, and only then the seen mark.
    ctx.signal?.throwIfAborted();
    await enqueueSessions(this.opts.queue, fresh, ctx.polledAt);
    await this.tracker.track(fresh);
    await this.state.markSeen(fresh.map((s) => ({ sessionId: s.sessionId, beginTime: s.beginTime })));
    await this.counts.record(
      [...all.values()].map((s) => ({
        sessionId: s.sessionId,
        beginTime: s.beginTime,
        out: !currentStateNames(s).some((n) => this.filterStates.includes(n)),
        sev: this.intake.severities.includes(currentSeverity(s)),
      })),
    );
    for (const s of fresh) this.opts.logger.debug({ alertId: s.sessionId }, 'session enqueued');
    const changes = await this.tracker.observe(known, ctx.codeNow);
    const r = ctx.result;
    const enqueued = fresh.filter((s) => unseen.has(s.sessionId)).length;
    r.enqueued += enqueued;
    r.alreadySeen += valid.size - enqueued;
    r.filtered += filtered;
    r.rejected += rejected;
    r.changes += changes;
    return { enqueued, filtered, rejected };
  }
}

function idOf(item: unknown): string {
  if (item && typeof item === 'object') {
    const id = (item as { sessionId?: unknown }).sessionId;
    if (typeof id === 'string') return id;
  }
  return JSON.stringify(item) ?? '';
}

/** End time of a raw listing item (its begin time when it has none); undefined when neither is a number. */
function endTimeOf(item: unknown): number | undefined {
  if (!item || typeof item !== 'object') return undefined;
  const { endTime, beginTime } = item as { endTime?: unknown; beginTime?: unknown };
  if (typeof endTime === 'number' && Number.isFinite(endTime)) return endTime;
  if (typeof beginTime === 'number' && Number.isFinite(beginTime)) return beginTime;
  return undefined;
}
