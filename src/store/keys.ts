/** BullMQ queue names. BullMQ keeps its keys under `<prefix>:<queue>:…`. */
export const FORWARD_QUEUE = 'forward';
export const POLL_QUEUE = 'poll';
/** Stable id so every replica upserts the same scheduler instead of adding one each. */
export const POLL_SCHEDULER_ID = 'poll-code42';

/**
 * The daemon's own Redis keys. They live under `<prefix>:state:` so they can never collide with a
 * BullMQ queue's keys (`<prefix>:<queue>:…`).
 */
export interface StateKeys {
  /** String: Code42's time (epoch ms) at the start of the last completed poll's recent read. */
  checkpoint: string;
  /** Sorted set: session id → begin time, for every session already enqueued (kept for `DEEP_LOOKBACK`). */
  seen: string;
  /** Stream of rejected input records. */
  rejected: string;
  /** Sorted set: rejected item key → when, so a bad item re-read in the overlap is recorded once. */
  rejectedIds: string;
  /** Hash: session id → XSOAR incident id, written right after XSOAR accepted the incident. */
  ledger: string;
  /** String with a token: held by the process that is polling right now. */
  pollLock: string;
  /** Hash: outcome of the last poll (for readiness across replicas). */
  lastPoll: string;
  /** String: present as long as Redis holds this deployment's state; its absence means Redis lost its data. */
  marker: string;
  /** String (JSON): since when Redis's records may be incomplete; sessions that began before are searched first. */
  rebuild: string;
  /** Hash: session id → snapshot of what was last read of a forwarded session (change detection). */
  tracked: string;
  /** Stream of session change records (the default change sink), capped. */
  changes: string;
  /** Hash: the sweeps' durable position (listing start, cycle starts, page cursors). */
  sweep: string;
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
    lastPoll: `${base}:last-poll`,
    marker: `${base}:marker`,
    rebuild: `${base}:rebuild`,
    tracked: `${base}:tracked`,
    changes: `${base}:changes`,
    sweep: `${base}:sweep`,
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
  return decodeURIComponent(jobId.replace(/^session-/, ''));
}
