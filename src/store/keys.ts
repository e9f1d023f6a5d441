/**
 * Every Redis key of a deployment, in one place, with how long it lives. Everything lives under the
 * deployment's prefix (QUEUE_PREFIX), so replicas of one deployment share it and two deployments on
 * one Redis never meet:
 * - BullMQ keeps each queue under `<prefix>:<queue>:…` (jobs, locks, the failed set);
 * - the daemon's own keys live under `<prefix>:state:…`, which no queue name can collide with.
 */

/** Work queues (BullMQ). Jobs: completed ones kept KEEP_COMPLETED (forward) or removed (update); failed ones until retried. */
export const FORWARD_QUEUE = 'forward';
export const UPDATE_QUEUE = 'update';
/** Queues earlier versions scheduled the poll and the state sync on; only cleaned up at start. */
export const LEGACY_SCHEDULE_QUEUES = { poll: { queue: 'poll', scheduler: 'poll-code42' }, stateSync: { queue: 'state-sync', scheduler: 'state-sync-xsoar' } } as const;
/** @deprecated the poll queue of earlier versions (see LEGACY_SCHEDULE_QUEUES). */
export const POLL_QUEUE = LEGACY_SCHEDULE_QUEUES.poll.queue;
/** @deprecated the poll scheduler id of earlier versions. */
export const POLL_SCHEDULER_ID = LEGACY_SCHEDULE_QUEUES.poll.scheduler;

/** The daemon's own keys. */
export interface StateKeys {
  /** String, no TTL: Code42's time (epoch ms) at the start of the last completed poll's recent read. */
  checkpoint: string;
  /** Sorted set, pruned to DEEP_LOOKBACK + 1 h: session id → begin time, for every session already enqueued. */
  seen: string;
  /** Stream, capped at 10,000 entries: rejected input records. */
  rejected: string;
  /** Sorted set, pruned like `seen`: rejected item key → when, so a bad item re-read in the overlap is recorded once. */
  rejectedIds: string;
  /** Hash, no TTL: session id → XSOAR incident id, written right after XSOAR accepted the incident. `:inflight`, `:accepted`, `:forced` beside it. */
  ledger: string;
  /** String, PX 5 s renewed while a poll runs: held by the replica polling right now (the poll schedule's lease). */
  pollLock: string;
  /** Hash, no TTL: when the next poll is due and how the last one ended (Redis's clock). */
  pollSchedule: string;
  /** Hash, no TTL: outcome of the last poll (for readiness across replicas). */
  lastPoll: string;
  /** String, no TTL: present as long as Redis holds this deployment's state; its absence means Redis lost its data. */
  marker: string;
  /** String (JSON), TTL = how long older sessions may still be queued: since when Redis's records may be incomplete. */
  rebuild: string;
  /** Hash, pruned like `seen`: session id → snapshot of what was last read of a forwarded session (change detection). */
  tracked: string;
  /** Stream, capped at about 10,000 entries: session change records (only when TRACK_UPDATES and STATE_SYNC are off). */
  changes: string;
  /** Hash, no TTL: the sweeps' durable position (listing start, cycle starts, page cursors). */
  sweep: string;
  /** Hash, no TTL: when the next state sync is due and how the last one ended. */
  stateSyncSchedule: string;
  /** String, PX 5 s renewed while a state sync runs: its lease. */
  stateSyncLock: string;
  /** Hash, no TTL: when the next lookup of ids XSOAR did not give is due (every second). */
  idLookupSchedule: string;
  /** String, PX 5 s renewed while the lookup runs: its lease. */
  idLookupLock: string;
  /** String, PX 10 s: written by the probe that finds out whether a full Redis accepts writes again. */
  memoryProbe: string;
  /** Keys of the shared Code42 request budget (rate-limiter-flexible, one minute each). */
  code42Budget: string;
  /** The two-way sync's keys. */
  sync: SyncKeys;
}

/** The two-way sync's keys, under `<prefix>:state:sync:`. */
export interface SyncKeys {
  /** Hash per session, no TTL: the fields of SessionSyncRecord (what was synced each way, what the daemon wrote). */
  session(sessionId: string): string;
  /** Hash per session, deleted when claimed: the merged change not yet claimed by an update job. */
  pending(sessionId: string): string;
  /** Set: session ids with a pending change (swept every STATE_SYNC_INTERVAL so none is left behind). */
  pendingIds: string;
  /** String, no TTL: ISO time up to which XSOAR has been searched for closed incidents. */
  xsoarCheckpoint: string;
  /** Set: session ids closed in Incydr while Incydr closes were not carried (STATE_SYNC off or to-code42), carried once they are. */
  heldCloses: string;
  /** Set: session ids with changes not written to their incidents while TRACK_UPDATES=false, carried once it is on. */
  heldUpdates: string;
}

export function syncKeys(prefix: string): SyncKeys {
  const base = `${prefix}:state:sync`;
  return {
    session: (id) => `${base}:session:${id}`,
    pending: (id) => `${base}:pending:${id}`,
    pendingIds: `${base}:pending-ids`,
    xsoarCheckpoint: `${base}:xsoar-checkpoint`,
    heldCloses: `${base}:held-closes`,
    heldUpdates: `${base}:held-updates`,
  };
}

export function stateKeys(prefix: string): StateKeys {
  const base = `${prefix}:state`;
  return {
    checkpoint: `${base}:checkpoint`,
    seen: `${base}:seen`,
    rejected: `${base}:rejected`,
    rejectedIds: `${base}:rejected-ids`,
    ledger: `${base}:ledger`,
    pollLock: `${base}:poll-lock`,
    pollSchedule: `${base}:schedule:poll`,
    lastPoll: `${base}:last-poll`,
    marker: `${base}:marker`,
    rebuild: `${base}:rebuild`,
    tracked: `${base}:tracked`,
    changes: `${base}:changes`,
    sweep: `${base}:sweep`,
    stateSyncSchedule: `${base}:schedule:state-sync`,
    stateSyncLock: `${base}:state-sync-lock`,
    idLookupSchedule: `${base}:schedule:id-lookup`,
    idLookupLock: `${base}:id-lookup-lock`,
    memoryProbe: `${prefix}:memory-probe`,
    code42Budget: `${prefix}:code42-budget`,
    sync: syncKeys(prefix),
  };
}

/**
 * Job id of a session's forward job. BullMQ refuses ids that are integers or contain `:`;
 * percent-encoding keeps the mapping one-to-one.
 */
export function forwardJobId(sessionId: string): string {
  return `session-${encodeURIComponent(sessionId)}`;
}

export function sessionIdFromJobId(jobId: string): string {
  return decodeURIComponent(jobId.replace(/^(session|update)-/, ''));
}

/** The update job of a session. Same id for every change, so two changes of one session never race. */
export function updateJobId(sessionId: string): string {
  return `update-${encodeURIComponent(sessionId)}`;
}

/** The work queues an operator sees in `failed list` and retries with `failed retry`. */
export const WORK_QUEUES = [
  { name: FORWARD_QUEUE, jobId: forwardJobId, what: 'create the incident' },
  { name: UPDATE_QUEUE, jobId: updateJobId, what: 'update the incident from its session' },
] as const;

export type WorkQueueName = (typeof WORK_QUEUES)[number]['name'];
