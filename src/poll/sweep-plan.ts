/**
 * The sweeps: how deep each one reads the listing (newest end time first) and how often, and how many
 * pages a poll reads so that a cycle is spread evenly over its interval.
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
 */
export function sweepTiers(opts: { lookbackMs: number; sweepIntervalMs: number }): SweepTier[] {
  return [
    { name: 'recent', periodMs: Math.min(opts.sweepIntervalMs, Math.max(1_000, Math.floor(opts.lookbackMs / 8))), floorMs: opts.lookbackMs },
    { name: 'deep', periodMs: opts.sweepIntervalMs, floorMs: null },
  ];
}

/** Pages to read this poll: what is left, spread over the polls left in the cycle; all allowed when overdue. */
export function sweepPagesDue(p: { nextPage: number; estimatedPages: number; msLeft: number; pollIntervalMs: number; maxPages: number }): number {
  if (p.msLeft <= 0) return p.maxPages;
  const pollsLeft = Math.max(1, Math.floor(p.msLeft / Math.max(1, p.pollIntervalMs)));
  const remaining = Math.max(1, p.estimatedPages - p.nextPage);
  return Math.min(p.maxPages, Math.max(1, Math.ceil(remaining / pollsLeft)));
}
