import { parseDuration } from '../config/duration.js';
import type { Config } from '../config/load-config.js';
import { RequestBudget } from '../code42/request-budget.js';
import { forwardJobId } from '../pipeline/keys.js';
import { SessionIntake, enqueueSessions } from '../pipeline/session-intake.js';
import { createLogger } from '../infra/logger.js';
import { createIncydrClient } from '../upstreams.js';
import type { Session } from '../code42/schemas.js';
import { openAdminContext } from './admin-context.js';
import { UsageError, type CliIo } from './command.js';

/** An ISO 8601 time, or a duration meaning "that long ago" (`2h`, `1d`). */
export function parseTimeArg(name: string, value: string, now = Date.now()): number {
  const ago = parseDuration(value);
  if (ago !== undefined && !/^\d+$/.test(value.trim())) return now - ago;
  const at = Date.parse(value);
  if (Number.isNaN(at)) throw new UsageError(`--${name}: ${JSON.stringify(value)} is neither an ISO 8601 time nor a duration such as 2h or 1d`);
  return at;
}

export interface ReplaySummary {
  read: number;
  enqueued: number;
  requeued: number;
  alreadyForwarded: number;
  alreadyQueued: number;
  filtered: number;
  rejected: number;
}

/**
 * `replay --since <time> [--until <time>] [--force]`: re-reads the sessions that began in the window
 * and forwards those not in the ledger. With --force, sessions in the ledger are forgotten and their
 * incidents created again (for incidents lost on the XSOAR side).
 */
export async function replayCommand(config: Config, args: { since: number; until?: number; force: boolean }, io: CliIo): Promise<number> {
  if (args.until !== undefined && args.until <= args.since) throw new UsageError('--until must be after --since');
  const ctx = await openAdminContext(config);
  const logger = createLogger({ level: 'warn' });
  try {
    // The replay spends the same Code42 budget as the running daemon.
    const budget = new RequestBudget({ redis: ctx.redis, prefix: config.redis.prefix, perMinute: config.code42.rateLimit });
    const client = createIncydrClient(config, { budget });
    const intake = new SessionIntake({ rejected: ctx.rejected, severities: config.code42.severities, states: config.code42.states, logger });
    const summary: ReplaySummary = { read: 0, enqueued: 0, requeued: 0, alreadyForwarded: 0, alreadyQueued: 0, filtered: 0, rejected: 0 };
    const query = { onOrAfter: args.since, ...(args.until !== undefined ? { before: args.until } : {}), severities: intake.severities, states: config.code42.states };
    for await (const page of client.iterateSessionPages(query)) {
      summary.read += page.items.length;
      const { valid, filtered, rejected } = await intake.accept(page.items);
      summary.filtered += filtered;
      summary.rejected += rejected;
      const toAdd: Session[] = [];
      for (const session of valid.values()) {
        const id = session.sessionId;
        // Forwarded, whether or not its incident id is known yet.
        if (await ctx.ledger.isForwarded(id)) {
          if (!args.force) {
            summary.alreadyForwarded += 1;
            continue;
          }
          await ctx.ledger.forget(id);
        }
        const job = await ctx.queue.getJob(forwardJobId(id));
        if (job) {
          const state = await job.getState();
          if (state === 'failed') {
            await job.retry('failed');
            summary.requeued += 1;
            continue;
          }
          if (state !== 'completed' && state !== 'unknown') {
            summary.alreadyQueued += 1;
            continue;
          }
          // A completed job keeps its id for a while; remove it so the session can be queued again.
          await job.remove();
        }
        toAdd.push(session);
      }
      await enqueueSessions(ctx.queue, toAdd, Date.now());
      summary.enqueued += toAdd.length;
    }
    io.out(
      `replay ${new Date(args.since).toISOString()} → ${args.until !== undefined ? new Date(args.until).toISOString() : 'now'}: ` +
        `read ${summary.read}, enqueued ${summary.enqueued}, moved back from the failed set ${summary.requeued}, ` +
        `already forwarded ${summary.alreadyForwarded}, already queued ${summary.alreadyQueued}, outside the filter ${summary.filtered}, invalid ${summary.rejected}\n`,
    );
    if (summary.enqueued + summary.requeued > 0) io.out('the running daemon forwards the enqueued sessions\n');
    return 0;
  } finally {
    await ctx.close();
  }
}
