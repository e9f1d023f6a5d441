/**
 * The sweeps: how deep each one reads the listing (newest end time first) and how often, and how many
 * pages a poll reads so that a cycle is spread evenly over its interval.
 *
 * They are the safety net of the count detection (count-watch.ts): while Code42's counts are usable
 * they run at a slower cadence, and at the documented one when they are not (no `totalCount`).
 */
export interface SweepTier {
  name: 'recent' | 'deep';
  /** A cycle starts this long after the previous one started (once that one is done). */
  periodMs: number;
  /** Reads down to sessions that ended this long before the cycle began; null: to the end of the listing. */
  floorMs: number | null;
}

/**
 * `recent`: sessions that became visible up to LOOKBACK after their latest activity, every LOOKBACK/8
 * (15 min at the default 2 h). `deep`: the whole DEEP_LOOKBACK window, every SWEEP_INTERVAL.
 * With counts (`countsActive`), what they would find is found by the count detection within minutes;
 * they then catch what counts mask: `recent` every LOOKBACK, `deep` every max(SWEEP_INTERVAL, DEEP_LOOKBACK).
 */
export function sweepTiers(opts: { lookbackMs: number; sweepIntervalMs: number; deepLookbackMs?: number; countsActive?: boolean }): SweepTier[] {
  const slow = opts.countsActive === true;
  const recentPeriod = slow ? opts.lookbackMs : Math.floor(opts.lookbackMs / 8);
  const deepPeriod = slow ? Math.max(opts.sweepIntervalMs, opts.deepLookbackMs ?? 0) : opts.sweepIntervalMs;
  return [
    { name: 'recent', periodMs: Math.min(deepPeriod, Math.max(1_000, recentPeriod)), floorMs: opts.lookbackMs },
    { name: 'deep', periodMs: deepPeriod, floorMs: null },
  ];
}

/**
 * Pages to read this poll so that the cycle keeps to its schedule: by the end of this poll's interval,
 * `elapsed / period` of the estimated pages should be read. Nothing when ahead of it (a long cycle reads
 * a page every few polls, not one every poll); one page a poll once past the estimate; all allowed when
 * overdue.
 */
export function sweepPagesDue(p: { nextPage: number; estimatedPages: number; elapsedMs: number; periodMs: number; pollIntervalMs: number; maxPages: number }): number {
  if (p.elapsedMs >= p.periodMs) return p.maxPages;
  if (p.nextPage >= p.estimatedPages) return 1;
  const target = Math.ceil((p.estimatedPages * Math.min(p.periodMs, p.elapsedMs + p.pollIntervalMs)) / Math.max(1, p.periodMs));
  return Math.min(p.maxPages, Math.max(0, target - p.nextPage));
}
