import { parseDuration } from '../config/duration.js';
import type { Config } from '../config/load-config.js';
import { RequestBudget } from '../code42/request-budget.js';
import { forwardJobId } from '../store/keys.js';
import { SessionIntake, enqueueSessions } from '../poll/session-intake.js';
import { createLogger } from '../infra/logger.js';
import { createIncydrClient, createXsoarClient } from '../upstreams.js';
import type { Session } from '../code42/schemas.js';
import { openAdminContext, type AdminContext } from './admin-context.js';
import { UsageError, type CliIo } from './command.js';

/** More sessions to forward than this needs `--yes`: a replay over the wrong window is many incidents. */
export const REPLAY_CONFIRM_ABOVE = 5;

/** An ISO 8601 time, or a duration meaning "that long ago" (`2h`, `1d`). */
export function parseTimeArg(name: string, value: string, now = Date.now()): number {
  const ago = parseDuration(value);
  if (ago !== undefined) return now - ago;
  const at = Date.parse(value);
  if (Number.isNaN(at)) throw new UsageError(`--${name}: ${JSON.stringify(value)} is neither an ISO 8601 time nor a duration such as 2h or 1d`);
  return at;
}

export interface ReplayArgs {
  since: number;
  until?: number;
  /** Look at sessions even when the ledger says they were forwarded (XSOAR is still searched first). */
  force: boolean;
  /** Show what would be done; change nothing. */
  dryRun?: boolean;
  /** Go ahead with more than REPLAY_CONFIRM_ABOVE sessions to forward. */
  yes?: boolean;
}

export interface ReplaySummary {
  read: number;
  enqueued: number;
  requeued: number;
  alreadyForwarded: number;
  /** Not in the ledger (or, with --force, in it) but found in XSOAR: recorded, not created again. */
  foundInXsoar: number;
  alreadyQueued: number;
  filtered: number;
  rejected: number;
}

/** What replay does with one session, decided before anything is written. */
type ReplayAction =
  | { kind: 'create'; session: Session; forgetLedger: string | null }
  | { kind: 'requeue'; session: Session; forgetLedger: string | null }
  | { kind: 'record'; session: Session; incidentId: string; ledger: string | null };

function whyForward(ledger: string | null): string {
  return ledger ? `the ledger says incident ${ledger}, which XSOAR no longer holds` : 'not in the ledger and XSOAR does not hold it';
}

function describeAction(a: ReplayAction): string {
  const id = a.session.sessionId;
  switch (a.kind) {
    case 'create':
      return `forward ${id}: ${whyForward(a.forgetLedger)}`;
    case 'requeue':
      return `retry ${id} from the failed set: ${whyForward(a.forgetLedger)}`;
    case 'record':
      return a.ledger === a.incidentId
        ? `keep ${id}: XSOAR still holds incident ${a.incidentId}`
        : `record ${id} → incident ${a.incidentId}: found in XSOAR${a.ledger ? ` (the ledger said ${a.ledger})` : ', missing from the ledger'}; not created again`;
  }
}

/**
 * `replay --since <time> [--until <time>] [--force] [--dry-run] [--yes]`: re-reads the sessions that
 * began in the window and forwards those XSOAR does not hold. Every session it would forward is first
 * searched in XSOAR (an incident found there is recorded in the ledger, never created again); --force
 * looks at sessions the ledger calls forwarded too. It plans first and writes only after: --dry-run
 * prints the plan, and more than REPLAY_CONFIRM_ABOVE sessions to forward need --yes.
 */
export async function replayCommand(config: Config, args: ReplayArgs, io: CliIo): Promise<number> {
  if (args.until !== undefined && args.until <= args.since) throw new UsageError('--until must be after --since');
  const ctx = await openAdminContext(config);
  const logger = createLogger({ level: 'warn' });
  try {
    // The replay spends the same Code42 budget as the running daemon.
    const budget = new RequestBudget({ redis: ctx.redis, prefix: config.redis.prefix, perMinute: config.code42.rateLimit });
    const client = createIncydrClient(config, { budget });
    const xsoar = createXsoarClient(config);
    const intake = new SessionIntake({ rejected: ctx.rejected, severities: config.code42.severities, states: config.code42.states, logger });
    const summary: ReplaySummary = { read: 0, enqueued: 0, requeued: 0, alreadyForwarded: 0, foundInXsoar: 0, alreadyQueued: 0, filtered: 0, rejected: 0 };
    const query = { onOrAfter: args.since, ...(args.until !== undefined ? { before: args.until } : {}), severities: intake.severities, states: config.code42.states };

    const plan: ReplayAction[] = [];
    for await (const page of client.iterateSessionPages(query)) {
      summary.read += page.items.length;
      const { valid, filtered, rejected } = await intake.accept(page.items);
      summary.filtered += filtered;
      summary.rejected += rejected;
      for (const session of valid.values()) {
        const id = session.sessionId;
        // Forwarded, whether or not its incident id is known yet.
        const forwarded = await ctx.ledger.isForwarded(id);
        if (forwarded && !args.force) {
          summary.alreadyForwarded += 1;
          continue;
        }
        const ledger = forwarded ? ((await ctx.ledger.incidentFor(id)) ?? '(id not yet known)') : null;
        const state = await jobState(ctx, id);
        if (state !== 'failed' && state !== 'completed' && state !== 'unknown') {
          summary.alreadyQueued += 1;
          continue;
        }
        // Never forward blind: XSOAR may hold the incident although the ledger does not say so.
        let found: Awaited<ReturnType<typeof xsoar.findIncidentsForSession>>;
        try {
          found = await xsoar.findIncidentsForSession(id, config.xsoar.incidentType);
        } catch (err) {
          io.err(`replay: cannot search XSOAR for session ${id}: ${(err as Error).message}; nothing was changed\n`);
          return 1;
        }
        const incidentId = found[0]?.id;
        if (incidentId !== undefined) plan.push({ kind: 'record', session, incidentId, ledger });
        else plan.push({ kind: state === 'failed' ? 'requeue' : 'create', session, forgetLedger: ledger });
      }
    }

    const forwards = plan.filter((a) => a.kind !== 'record').length;
    for (const action of plan) io.out(`${args.dryRun ? 'would ' : ''}${describeAction(action)}\n`);
    if (args.dryRun) {
      io.out(`dry run: ${forwards} session(s) would be forwarded, ${plan.length - forwards} found in XSOAR; nothing was changed\n`);
      return 0;
    }
    if (forwards > REPLAY_CONFIRM_ABOVE && !args.yes) {
      io.err(`replay would forward ${forwards} sessions (more than ${REPLAY_CONFIRM_ABOVE}); check the list above (or --dry-run) and run again with --yes. Nothing was changed.\n`);
      return 1;
    }

    const toAdd: Session[] = [];
    for (const action of plan) {
      const id = action.session.sessionId;
      if (action.kind === 'record') {
        if (action.ledger !== action.incidentId) await ctx.ledger.record(id, action.incidentId);
        summary.foundInXsoar += 1;
        continue;
      }
      if (action.forgetLedger) await ctx.ledger.forget(id);
      const job = await ctx.queue.getJob(forwardJobId(id));
      if (action.kind === 'requeue' && job) {
        await job.retry('failed');
        summary.requeued += 1;
        continue;
      }
      // A completed job keeps its id for a while; remove it so the session can be queued again.
      if (job) await job.remove();
      toAdd.push(action.session);
    }
    await enqueueSessions(ctx.queue, toAdd, Date.now());
    summary.enqueued += toAdd.length;

    io.out(
      `replay ${new Date(args.since).toISOString()} → ${args.until !== undefined ? new Date(args.until).toISOString() : 'now'}: ` +
        `read ${summary.read}, enqueued ${summary.enqueued}, moved back from the failed set ${summary.requeued}, ` +
        `already forwarded ${summary.alreadyForwarded}, found in XSOAR ${summary.foundInXsoar}, already queued ${summary.alreadyQueued}, ` +
        `outside the filter ${summary.filtered}, invalid ${summary.rejected}\n`,
    );
    if (summary.enqueued + summary.requeued > 0) io.out('the running daemon forwards the enqueued sessions\n');
    return 0;
  } finally {
    await ctx.close();
  }
}

async function jobState(ctx: AdminContext, sessionId: string): Promise<string> {
  const job = await ctx.queue.getJob(forwardJobId(sessionId));
  return job ? job.getState() : 'unknown';
}
