import { randomUUID } from 'node:crypto';
import type { Queue } from 'bullmq';
import type { Logger } from '../infra/logger.js';
import type { XsoarClient } from '../xsoar/xsoar-client.js';
import { forwardJobId } from '../store/keys.js';
import type { CreateMark, Ledger } from './ledger.js';
import { NOT_STORED_REASON } from './forward-worker.js';

export interface IdResolverEvents {
  /** Ids found for this many sessions in one run. */
  onResolved?(count: number): void;
  /** XSOAR stored nothing for an accepted create and its job could not be put in the failed set (it is gone). */
  onNotStored?(): void;
}

export interface IdResolverOptions {
  ledger: Ledger;
  xsoar: Pick<XsoarClient, 'findIncidentsForSessions'>;
  /** The forward queue: a session XSOAR stored nothing for goes back through it to the failed set. */
  queue: Queue;
  incidentType: string;
  /** XSOAR_SEARCH_SETTLE: how long after acceptance a search may still miss the incident. */
  settleMs: number;
  logger: Logger;
  /** Pause between runs. @defaultValue 1000 */
  intervalMs?: number;
  /** Sessions per search. @defaultValue 50 */
  batchSize?: number;
  /** Most sessions looked up in one run (longest waiting first). @defaultValue 1000 */
  maxPerRun?: number;
  events?: IdResolverEvents;
  clock?: () => number;
}

/** What one run did. */
export interface IdResolverRun {
  /** False when another process had the turn. */
  ran: boolean;
  looked: number;
  resolved: number;
  /** Sessions past the settle window with nothing found, sent to the failed set. */
  notStored: number;
}

/**
 * Finds the incident ids of creates XSOAR accepted without one (XSOAR 8 SaaS, XSIAM), apart from the forward jobs:
 * a job records the 2xx and frees its slot at once, and this loop searches XSOAR for many such sessions per request
 * through the index lag. A found id goes in the ledger. A session still not found a full settle window after its
 * acceptance goes to the forward failed set with NOT_STORED_REASON: its completed job is retried, and the worker,
 * past the window, searches once more and fails it (or records the id), never creating again.
 *
 * One run at a time per deployment (a turn taken in Redis); a second replica's run is skipped, and were two to
 * overlap they would only search and record the same ids twice.
 */
export class IdResolver {
  private readonly clock: () => number;
  private timer: NodeJS.Timeout | undefined;
  private running: Promise<unknown> | undefined;
  private looping = false;
  /** Set by stop(): a run in progress ends after its current search. */
  private stopping = false;
  private lastError: string | undefined;

  constructor(private readonly opts: IdResolverOptions) {
    this.clock = opts.clock ?? Date.now;
  }

  start(): void {
    if (this.looping) return;
    this.looping = true;
    this.stopping = false;
    this.schedule();
  }

  /** Stops the loop and waits for a run in progress. */
  async stop(): Promise<void> {
    this.looping = false;
    this.stopping = true;
    if (this.timer) clearTimeout(this.timer);
    this.timer = undefined;
    await this.running?.catch(() => undefined);
  }

  private schedule(): void {
    if (!this.looping) return;
    this.timer = setTimeout(() => {
      this.running = this.runOnce()
        .then(() => {
          this.lastError = undefined;
        })
        .catch((err: unknown) => {
          // One line per distinct failure (an XSOAR outage would otherwise write one per run).
          const message = err instanceof Error ? err.message : String(err);
          if (message !== this.lastError) this.opts.logger.warn({ err }, `looking up incident ids failed (${message}); trying again`);
          this.lastError = message;
        })
        .finally(() => this.schedule());
    }, this.opts.intervalMs ?? 1_000);
    this.timer.unref();
  }

  /** One pass over the sessions whose id is unknown. */
  async runOnce(): Promise<IdResolverRun> {
    const { ledger, logger } = this.opts;
    const token = randomUUID();
    const outcome: IdResolverRun = { ran: false, looked: 0, resolved: 0, notStored: 0 };
    // The turn outlives a slow run: a second process then only repeats searches.
    if (!(await ledger.claimIdLookup(token, Math.max(30_000, this.opts.settleMs)))) return outcome;
    outcome.ran = true;
    try {
      const pending = await ledger.awaitingIds(this.opts.maxPerRun ?? 1_000);
      const batch = Math.max(1, this.opts.batchSize ?? 50);
      for (let i = 0; i < pending.length && !this.stopping; i += batch) {
        const chunk = pending.slice(i, i + batch);
        const searchedAt = this.clock();
        const found = await this.opts.xsoar.findIncidentsForSessions(
          chunk.map((p) => ({ sessionId: p.sessionId, name: p.accepted.name })),
          this.opts.incidentType,
        );
        outcome.looked += chunk.length;
        for (const { sessionId, accepted } of chunk) {
          const incidentId = found.get(sessionId)?.[0]?.id;
          if (incidentId !== undefined) {
            await ledger.record(sessionId, incidentId);
            outcome.resolved += 1;
            logger.info({ alertId: sessionId, incidentId, waitedMs: this.clock() - accepted.at }, 'incident id found by search after XSOAR accepted the create without it');
          } else if (searchedAt >= accepted.at + this.opts.settleMs) {
            if (await this.notStored(sessionId, accepted)) outcome.notStored += 1;
          }
        }
      }
      if (outcome.resolved > 0) this.opts.events?.onResolved?.(outcome.resolved);
      return outcome;
    } finally {
      await ledger.releaseIdLookup(token).catch(() => undefined);
    }
  }

  /**
   * Nothing found a settle window after acceptance: the job goes to the failed set through the worker (which
   * searches once more). True when the session left the lookup here.
   */
  private async notStored(sessionId: string, accepted: CreateMark): Promise<boolean> {
    const { ledger, queue, logger } = this.opts;
    const log = logger.child({ alertId: sessionId });
    const job = await queue.getJob(forwardJobId(sessionId));
    const state = job ? await job.getState() : 'unknown';
    if (job && state === 'completed') {
      await ledger.stopAwaitingId(sessionId);
      try {
        await job.retry('completed');
      } catch (err) {
        // Another process moved it first; whichever did, the worker decides.
        log.debug({ err }, 'could not move the completed job back to the queue');
      }
      log.info({ settleMs: this.opts.settleMs }, 'no incident found for a create XSOAR accepted; one more search, then the failed set');
      return true;
    }
    if (job && state === 'failed') {
      await ledger.stopAwaitingId(sessionId);
      return true;
    }
    if (job && state !== 'unknown') return false; // the job runs or waits: its own run decides (past the window it searches once and fails)
    // The job record is gone (KEEP_COMPLETED): nothing to put in the failed set; say so and stop looking.
    await ledger.stopAwaitingId(sessionId);
    this.opts.events?.onNotStored?.();
    log.error(
      { acceptedAt: new Date(accepted.at).toISOString(), settleMs: this.opts.settleMs },
      `${NOT_STORED_REASON}; its forward job is no longer kept, so it is not in the failed set ('replay --force' creates it again)`,
    );
    return true;
  }
}
