import type { Config } from '../config/load-config.js';
import { sessionIdFromJobId, forwardJobId } from '../store/keys.js';
import { openAdminContext } from './admin-context.js';
import type { CliIo } from './command.js';

export interface FailedEntry {
  /** `failed`: a forward job in the failed set; `rejected`: input from Code42 that failed validation. */
  kind: 'failed' | 'rejected';
  sessionId: string | null;
  jobId: string | null;
  attempts: number | null;
  reason: string;
  /** ISO time it failed or was rejected. */
  at: string;
}

/** `failed list [--json]`: the failed set and the rejected input, newest first. */
export async function failedList(config: Config, json: boolean, io: CliIo): Promise<number> {
  const ctx = await openAdminContext(config);
  try {
    const jobs = await ctx.queue.getFailed(0, -1);
    const entries: FailedEntry[] = jobs.map((job) => ({
      kind: 'failed',
      sessionId: job.id ? sessionIdFromJobId(job.id) : null,
      jobId: job.id ?? null,
      attempts: job.attemptsMade,
      reason: job.failedReason,
      at: new Date(job.finishedOn ?? job.processedOn ?? job.timestamp).toISOString(),
    }));
    for (const r of await ctx.rejected.list()) {
      entries.push({ kind: 'rejected', sessionId: r.sessionId, jobId: null, attempts: null, reason: r.reason, at: new Date(r.at).toISOString() });
    }
    entries.sort((a, b) => b.at.localeCompare(a.at));
    if (json) {
      io.out(`${JSON.stringify(entries, null, 2)}\n`);
      return 0;
    }
    if (entries.length === 0) {
      io.out('no failed jobs and no rejected input\n');
      await noteUnknownIds(ctx.ledger.acceptedCount(), io);
      return 0;
    }
    const rows = entries.map((e) => [e.kind, e.sessionId ?? '(no id)', e.attempts === null ? '-' : String(e.attempts), e.at, e.reason.replace(/\s+/g, ' ')]);
    const head = ['KIND', 'SESSION', 'ATTEMPTS', 'WHEN', 'REASON'];
    const widths = head.slice(0, 4).map((h, i) => Math.max(h.length, ...rows.map((r) => (r[i] as string).length)));
    const line = (cells: string[]): string => cells.map((c, i) => (i < 4 ? c.padEnd(widths[i] as number) : c)).join('  ');
    io.out(`${[line(head), ...rows.map(line)].join('\n')}\n`);
    const failed = entries.filter((e) => e.kind === 'failed').length;
    io.out(`\n${failed} failed job(s) (retry with 'failed retry'), ${entries.length - failed} rejected input record(s) (fix at the source, then 'replay')\n`);
    await noteUnknownIds(ctx.ledger.acceptedCount(), io);
    return 0;
  } finally {
    await ctx.close();
  }
}

/**
 * `failed retry <sessionId>|--all`: moves failed jobs back to the queue. Still exactly once: a worker
 * checks the ledger before creating anything.
 */
export async function failedRetry(config: Config, sessionId: string | undefined, all: boolean, io: CliIo): Promise<number> {
  const ctx = await openAdminContext(config);
  try {
    if (all) {
      const count = (await ctx.queue.getJobCounts('failed')).failed ?? 0;
      if (count > 0) await ctx.queue.retryJobs({ state: 'failed', count: 1000 });
      io.out(`moved ${count} failed job(s) back to the queue\n`);
      return 0;
    }
    const job = await ctx.queue.getJob(forwardJobId(sessionId as string));
    if (!job || !(await job.isFailed())) {
      io.err(`session ${sessionId} has no job in the failed set ('failed list' shows what is there)\n`);
      return 1;
    }
    await job.retry('failed');
    io.out(`moved the job of session ${sessionId} back to the queue\n`);
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
