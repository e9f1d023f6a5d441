import type { Config } from '../config/load-config.js';
import { WORK_QUEUES, sessionIdFromJobId, type WorkQueueName } from '../store/keys.js';
import { openAdminContext } from './admin-context.js';
import { UsageError, type CliIo } from './command.js';

export interface FailedEntry {
  /** `failed`: a job in a queue's failed set; `rejected`: input from Code42 that failed validation. */
  kind: 'failed' | 'rejected';
  /** The queue of a failed job (`forward`: create the incident; `update`: update it from its session); null for rejected input. */
  queue: WorkQueueName | null;
  sessionId: string | null;
  jobId: string | null;
  attempts: number | null;
  reason: string;
  /** ISO time it failed or was rejected. */
  at: string;
}

/** Which entries a `failed` command works on: one queue (or the rejected input), and/or a reason substring. */
export interface FailedFilter {
  queue?: WorkQueueName | 'rejected';
  reason?: string;
}

/** Checks the `--queue` and `--reason` options. */
export function failedFilter(queue: unknown, reason: unknown, rejectedAllowed: boolean): FailedFilter {
  const names: string[] = WORK_QUEUES.map((q) => q.name);
  if (rejectedAllowed) names.push('rejected');
  const filter: FailedFilter = {};
  if (queue !== undefined) {
    if (typeof queue !== 'string' || !names.includes(queue)) throw new UsageError(`--queue must be one of: ${names.join(', ')}`);
    filter.queue = queue as FailedFilter['queue'] & string;
  }
  if (reason !== undefined) {
    if (typeof reason !== 'string' || reason.trim() === '') throw new UsageError('--reason needs a text to look for in the reasons');
    filter.reason = reason;
  }
  return filter;
}

const matches = (filter: FailedFilter, e: FailedEntry): boolean =>
  (filter.queue === undefined || (filter.queue === 'rejected' ? e.kind === 'rejected' : e.queue === filter.queue)) &&
  (filter.reason === undefined || e.reason.toLowerCase().includes(filter.reason.toLowerCase()));

/** The failed jobs of every work queue, newest first. */
async function failedJobs(ctx: Awaited<ReturnType<typeof openAdminContext>>): Promise<FailedEntry[]> {
  const entries: FailedEntry[] = [];
  for (const { name } of WORK_QUEUES) {
    for (const job of await ctx.queues[name].getFailed(0, -1)) {
      entries.push({
        kind: 'failed',
        queue: name,
        sessionId: job.id ? sessionIdFromJobId(job.id) : null,
        jobId: job.id ?? null,
        attempts: job.attemptsMade,
        reason: job.failedReason,
        at: new Date(job.finishedOn ?? job.processedOn ?? job.timestamp).toISOString(),
      });
    }
  }
  return entries;
}

/** `failed list [--json] [--queue q] [--reason text]`: the failed sets of every queue and the rejected input, newest first. */
export async function failedList(config: Config, json: boolean, io: CliIo, filter: FailedFilter = {}): Promise<number> {
  const ctx = await openAdminContext(config);
  try {
    const entries = await failedJobs(ctx);
    for (const r of await ctx.rejected.list()) {
      entries.push({ kind: 'rejected', queue: null, sessionId: r.sessionId, jobId: null, attempts: null, reason: r.reason, at: new Date(r.at).toISOString() });
    }
    const shown = entries.filter((e) => matches(filter, e)).sort((a, b) => b.at.localeCompare(a.at));
    if (json) {
      io.out(`${JSON.stringify(shown, null, 2)}\n`);
      return 0;
    }
    if (shown.length === 0) {
      io.out(`no failed jobs and no rejected input${filter.queue || filter.reason ? ' matching the filter' : ''}\n`);
      await noteUnknownIds(ctx.ledger.acceptedCount(), io);
      return 0;
    }
    const rows = shown.map((e) => [e.kind, e.queue ?? '-', e.sessionId ?? '(no id)', e.attempts === null ? '-' : String(e.attempts), e.at, e.reason.replace(/\s+/g, ' ')]);
    const head = ['KIND', 'QUEUE', 'SESSION', 'ATTEMPTS', 'WHEN', 'REASON'];
    const widths = head.slice(0, 5).map((h, i) => Math.max(h.length, ...rows.map((r) => (r[i] as string).length)));
    const line = (cells: string[]): string => cells.map((c, i) => (i < 5 ? c.padEnd(widths[i] as number) : c)).join('  ');
    io.out(`${[line(head), ...rows.map(line)].join('\n')}\n`);
    const failed = shown.filter((e) => e.kind === 'failed');
    const byQueue = WORK_QUEUES.map((q) => `${failed.filter((e) => e.queue === q.name).length} ${q.name}`).join(', ');
    io.out(`\n${failed.length} failed job(s) (${byQueue}; retry with 'failed retry'), ${shown.length - failed.length} rejected input record(s) (fix at the source, then 'replay')\n`);
    await noteUnknownIds(ctx.ledger.acceptedCount(), io);
    return 0;
  } finally {
    await ctx.close();
  }
}

/**
 * `failed retry <sessionId>|--all [--queue q] [--reason text]`: moves failed jobs back to their queue.
 * Still exactly once: a forward job checks the ledger before creating anything, an update job applies
 * the session's pending change once.
 */
export async function failedRetry(config: Config, sessionId: string | undefined, all: boolean, io: CliIo, filter: FailedFilter = {}): Promise<number> {
  const ctx = await openAdminContext(config);
  try {
    const queues = WORK_QUEUES.filter((q) => filter.queue === undefined || filter.queue === q.name);
    if (all) {
      const entries = (await failedJobs(ctx)).filter((e) => matches(filter, e));
      const counts = new Map<string, number>();
      for (const e of entries) {
        const job = e.jobId && e.queue ? await ctx.queues[e.queue].getJob(e.jobId) : undefined;
        if (!job || !(await job.isFailed())) continue;
        await job.retry('failed');
        counts.set(e.queue as string, (counts.get(e.queue as string) ?? 0) + 1);
      }
      const total = [...counts.values()].reduce((a, b) => a + b, 0);
      const detail = queues.map((q) => `${counts.get(q.name) ?? 0} ${q.name}`).join(', ');
      io.out(`moved ${total} failed job(s) back to the queue (${detail})\n`);
      return 0;
    }
    let moved = 0;
    for (const q of queues) {
      const job = await ctx.queues[q.name].getJob(q.jobId(sessionId as string));
      if (!job || !(await job.isFailed()) || (filter.reason && !job.failedReason.toLowerCase().includes(filter.reason.toLowerCase()))) continue;
      await job.retry('failed');
      io.out(`moved the ${q.name} job of session ${sessionId} back to its queue\n`);
      moved += 1;
    }
    if (moved === 0) {
      io.err(`session ${sessionId} has no job in a failed set ('failed list' shows what is there)\n`);
      return 1;
    }
    return 0;
  } finally {
    await ctx.close();
  }
}

/**
 * Sessions XSOAR accepted without saying which incident it made count as forwarded (never created again);
 * until a search finds the incident, the operator is told how many there are. Those a search never finds are
 * in the failed set with the reason "accepted by XSOAR but no incident stored"; `failed retry` searches again,
 * `replay --force` creates them again.
 */
async function noteUnknownIds(count: Promise<number>, io: CliIo): Promise<void> {
  const n = await count;
  if (n > 0) io.out(`${n} session(s) forwarded whose XSOAR incident id is not known yet (XSOAR accepted the create without it)\n`);
}
