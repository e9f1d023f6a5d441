import { Queue } from 'bullmq';
import type { Config } from '../config/load-config.js';
import { SyncState, syncKeys, type ClaimedChange } from '../sync/sync-state.js';
import { UPDATE_QUEUE, updateJobId } from '../sync/update-queue.js';
import { openAdminContext } from './admin-context.js';
import type { CliIo } from './command.js';

export interface SessionStatus {
  sessionId: string;
  incidentId: string | null;
  lastToXsoar: { at: string; what: string } | null;
  lastToCode42: { at: string; what: string } | null;
  /** The last write the other side refused for this session, each way. */
  refusedToXsoar: { at: string; what: string } | null;
  refusedToCode42: { at: string; what: string } | null;
  pendingChange: { seq: number; kinds: string[]; detectedAt: string } | null;
  /** A change taken by an update job that has not finished (running now, or interrupted and due again). */
  changeInProgress: { seq: number; kinds: string[]; detectedAt: string } | null;
  updateJob: { state: string; attempts: number; reason: string | null } | null;
  /** Incydr state and XSOAR close the daemon itself wrote (never synced back). */
  wroteCode42State: string | null;
  closedInXsoarByDaemon: boolean;
  code42Calls: number;
}

function change(c: ClaimedChange | null | undefined): SessionStatus['pendingChange'] {
  return c ? { seq: c.seq, kinds: c.kinds, detectedAt: new Date(c.detectedAt).toISOString() } : null;
}

function sync(at: number | undefined, what: string | undefined): SessionStatus['lastToXsoar'] {
  return at === undefined ? null : { at: new Date(at).toISOString(), what: what ?? '' };
}

/** `status <sessionId> [--json]`: the session's incident, its last sync each way and any pending change. */
export async function statusCommand(config: Config, sessionId: string, json: boolean, io: CliIo): Promise<number> {
  const ctx = await openAdminContext(config);
  const queue = new Queue(UPDATE_QUEUE, { connection: ctx.redis, prefix: config.redis.prefix });
  queue.on('error', () => undefined);
  try {
    const state = new SyncState(ctx.redis, syncKeys(config.redis.prefix));
    const [incidentId, record, pending, job] = await Promise.all([
      ctx.ledger.incidentFor(sessionId),
      state.get(sessionId),
      state.pending(sessionId),
      queue.getJob(updateJobId(sessionId)),
    ]);
    const status: SessionStatus = {
      sessionId,
      incidentId,
      lastToXsoar: sync(record.lastToXsoar, record.lastToXsoarWhat),
      lastToCode42: sync(record.lastToCode42, record.lastToCode42What),
      refusedToXsoar: sync(record.refusedToXsoarAt, record.refusedToXsoarWhat),
      refusedToCode42: sync(record.refusedToCode42At, record.refusedToCode42What),
      pendingChange: change(pending),
      changeInProgress: change(record.inflight),
      updateJob: job ? { state: await job.getState(), attempts: job.attemptsMade, reason: job.failedReason || null } : null,
      wroteCode42State: record.wroteCode42State ?? null,
      closedInXsoarByDaemon: Boolean(record.xsoarClosedByDaemon),
      code42Calls: record.code42Calls ?? 0,
    };
    if (json) {
      io.out(`${JSON.stringify(status, null, 2)}\n`);
    } else {
      const line = (label: string, value: string): void => io.out(`${label.padEnd(20)}${value}\n`);
      const when = (s: { at: string; what: string } | null): string => (s ? `${s.at}  ${s.what}` : 'never');
      const pend = (c: SessionStatus['pendingChange']): string => (c ? `seq ${c.seq} (${c.kinds.join(', ')}), noticed ${c.detectedAt}` : 'none');
      line('session', sessionId);
      line('incident', incidentId ?? 'none (not forwarded)');
      line('last sync → XSOAR', when(status.lastToXsoar));
      line('last sync → Code42', when(status.lastToCode42));
      if (status.refusedToXsoar) line('refused by XSOAR', when(status.refusedToXsoar));
      if (status.refusedToCode42) line('refused by Code42', when(status.refusedToCode42));
      line('pending change', pend(status.pendingChange));
      if (status.changeInProgress) line('being applied', pend(status.changeInProgress));
      if (status.updateJob) line('update job', `${status.updateJob.state}${status.updateJob.reason ? `: ${status.updateJob.reason}` : ''}`);
      line('Code42 calls', `${status.code42Calls} made by the sync for this session`);
    }
    return incidentId === null && record.appliedSeq === undefined && !pending ? 1 : 0;
  } finally {
    await queue.close();
    await ctx.close();
  }
}
