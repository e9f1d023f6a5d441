import type { Queue } from 'bullmq';
import type { Redis } from 'ioredis';
import type { IncydrClient, SessionQuery } from '../code42/incydr-client.js';
import { Code42RequestError, Code42ResponseError } from '../code42/errors.js';
import type { Session } from '../code42/schemas.js';
import type { SessionState, SeverityWord } from '../code42/vocabulary.js';
import type { Logger } from '../infra/logger.js';
import type { StateKeys } from './keys.js';
import { SessionIntake, enqueueSessions } from './session-intake.js';
import { PollState } from './poll-state.js';
import { RedisLock } from './redis-lock.js';
import { RejectedLog } from './rejected-log.js';

/** Extra time sessions stay in the seen-set beyond the look-back window. */
const SEEN_MARGIN_MS = 3_600_000;

export interface PollResult {
  /** Start of the window asked for (epoch ms). */
  since: number;
  /** The checkpoint written at the end (the poll's query time). */
  checkpoint: number;
  pages: number;
  fetched: number;
  enqueued: number;
  alreadySeen: number;
  filtered: number;
  rejected: number;
  durationMs: number;
}

/** Counters the poller reports as it goes (metrics subscribe here). */
export interface PollerEvents {
  onSessions?(counts: { seen: number; enqueued: number; filtered: number; rejected: number }): void;
  /** After each poll: `skipped` when another process held the poll lock. */
  onPoll?(outcome: 'ok' | 'error' | 'skipped', durationMs: number, error?: unknown): void;
}

export interface PollerOptions {
  client: Pick<IncydrClient, 'iterateSessionPages'>;
  redis: Redis;
  /** The forward queue. */
  queue: Queue;
  keys: StateKeys;
  severities: readonly SeverityWord[];
  states: readonly SessionState[];
  firstFetchMs: number;
  lookbackMs: number;
  logger: Logger;
  events?: PollerEvents;
  /** Lifetime of the poll lock without renewal (a crashed poller blocks others this long at most). @defaultValue 30000 */
  lockTtlMs?: number;
  clock?: () => number;
}

/**
 * One poll of Code42: read every page of sessions since the checkpoint (minus the look-back overlap),
 * enqueue each session not seen before, then advance the checkpoint. The checkpoint moves only after
 * every session of the poll is in the queue, so a crash at any point loses nothing; the seen-set and
 * the job ids make the re-read overlap free of duplicates.
 */
export class Poller {
  private readonly state: PollState;
  private readonly rejected: RejectedLog;
  private readonly lock: RedisLock;
  private readonly clock: () => number;
  private readonly intake: SessionIntake;

  constructor(private readonly opts: PollerOptions) {
    this.state = new PollState(opts.redis, opts.keys);
    this.rejected = new RejectedLog(opts.redis, opts.keys);
    this.lock = new RedisLock(opts.redis, opts.keys.pollLock, opts.lockTtlMs ?? 30_000);
    this.clock = opts.clock ?? Date.now;
    this.intake = new SessionIntake({
      rejected: this.rejected,
      severities: opts.severities,
      states: opts.states,
      logger: opts.logger,
      clock: this.clock,
    });
  }

  /** Runs one poll; resolves null when another process is polling right now. */
  async runOnce(): Promise<PollResult | null> {
    if (!(await this.lock.acquire())) {
      this.opts.logger.debug('another process is polling; skipping this turn');
      this.opts.events?.onPoll?.('skipped', 0);
      return null;
    }
    const startedAt = this.clock();
    try {
      const result = await this.poll(startedAt);
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
    } finally {
      await this.lock.release();
    }
  }

  private async poll(startedAt: number): Promise<PollResult> {
    const { logger } = this.opts;
    const checkpoint = await this.state.getCheckpoint();
    const since = checkpoint === null ? startedAt - this.opts.firstFetchMs : checkpoint - this.opts.lookbackMs;
    const query: SessionQuery = { onOrAfter: since, severities: this.intake.severities, states: this.opts.states };
    const result: PollResult = {
      since,
      checkpoint: startedAt,
      pages: 0,
      fetched: 0,
      enqueued: 0,
      alreadySeen: 0,
      filtered: 0,
      rejected: 0,
      durationMs: 0,
    };
    logger.debug({ since: new Date(since).toISOString(), firstPoll: checkpoint === null }, 'poll started');

    for await (const page of this.opts.client.iterateSessionPages(query)) {
      result.pages += 1;
      result.fetched += page.items.length;
      const counts = await this.handlePage(page.items, startedAt);
      result.enqueued += counts.enqueued;
      result.alreadySeen += counts.alreadySeen;
      result.filtered += counts.filtered;
      result.rejected += counts.rejected;
      this.opts.events?.onSessions?.({
        seen: page.items.length,
        enqueued: counts.enqueued,
        filtered: counts.filtered,
        rejected: counts.rejected,
      });
    }

    await this.state.advanceCheckpoint(startedAt);
    const cutoff = startedAt - this.opts.lookbackMs - SEEN_MARGIN_MS;
    await this.state.pruneSeen(cutoff);
    await this.rejected.pruneIds(cutoff);
    result.durationMs = this.clock() - startedAt;
    // A poll that found nothing new is routine: at debug, so an idle daemon's log stays quiet.
    logger[result.enqueued > 0 || result.rejected > 0 ? 'info' : 'debug'](
      {
        since: new Date(since).toISOString(),
        checkpoint: new Date(startedAt).toISOString(),
        pages: result.pages,
        fetched: result.fetched,
        enqueued: result.enqueued,
        alreadySeen: result.alreadySeen,
        filtered: result.filtered,
        rejected: result.rejected,
        durationMs: result.durationMs,
      },
      'poll completed',
    );
    return result;
  }

  private async handlePage(
    items: readonly unknown[],
    polledAt: number,
  ): Promise<{ enqueued: number; alreadySeen: number; filtered: number; rejected: number }> {
    const { valid, filtered, rejected } = await this.intake.accept(items);
    const fresh = await this.state.unseen([...valid.keys()]);
    const sessions = fresh.map((id) => valid.get(id) as Session);
    // The add resolves once the jobs are stored in Redis; only then are they marked seen.
    await enqueueSessions(this.opts.queue, sessions, polledAt);
    await this.state.markSeen(sessions.map((s) => ({ sessionId: s.sessionId, beginTime: s.beginTime })));
    for (const sessionId of fresh) this.opts.logger.debug({ alertId: sessionId }, 'session enqueued');
    return { enqueued: fresh.length, alreadySeen: valid.size - fresh.length, filtered, rejected };
  }
}
