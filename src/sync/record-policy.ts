/**
 * How long the sync remembers: when the record of a session closed on both sides may expire, and how
 * close to its recorded intent a close must be to count as the daemon's own.
 */

/** How far a close may lie from the daemon's recorded intent to close and still be its own (clock and request time). */
export const OWN_CLOSE_SLACK_MS = 120_000;

/** Whether an incident `closed` at this time lies close enough to the daemon's recorded intent to close to be its own. */
export function closedUnderIntent(intentAt: number | undefined, closed: string): boolean {
  return intentAt !== undefined && Math.abs(Date.parse(closed) - intentAt) <= OWN_CLOSE_SLACK_MS;
}

/**
 * After a crash between the daemon's close of an incident and its record: the incident's `closed` time when
 * that close is the daemon's own (made under the recorded intent) and not recorded yet; otherwise undefined.
 */
export function interruptedOwnClose(record: { xsoarCloseIntentAt?: number; xsoarClosedByDaemon?: string }, closed: string | null): string | undefined {
  return closed && record.xsoarClosedByDaemon !== closed && closedUnderIntent(record.xsoarCloseIntentAt, closed) ? closed : undefined;
}

export interface RecordRetention {
  /** DEEP_LOOKBACK: how long after its begin the poller still re-reads a session. */
  deepLookbackMs: number;
  /** Kept this much longer (a late change, a late-indexed close). */
  graceMs: number;
}

/**
 * How long the record of a session closed on both sides is kept: until the session leaves
 * DEEP_LOOKBACK (begin time + DEEP_LOOKBACK), plus the grace. A later change of such a session (seen
 * only by a sweep of an older window, or after a reopen) starts a fresh record: it is applied as an
 * ordinary change, with no memory of the daemon's earlier writes.
 */
export function recordTtl(beginTime: number | undefined, retention: RecordRetention | undefined, now: number): number | undefined {
  if (!retention || beginTime === undefined || !Number.isFinite(beginTime)) return undefined;
  return Math.max(0, beginTime + retention.deepLookbackMs - now) + retention.graceMs;
}
