/**
 * Code42's clock, as this process can know it: from the `Date` header of Code42's responses.
 *
 * The poller's windows and checkpoint are Code42 times, never this host's clock: a replica whose clock
 * runs ahead would otherwise move the checkpoint past sessions Code42 has not shown yet, for good.
 *
 * `Date` has whole seconds and is stamped before the answer travels, so each response gives a lower
 * bound of the offset (Code42 − local): `date − localReceivedAt ≤ offset`. The clock keeps the largest
 * bound seen in the last minute (the closest to the truth, still never ahead of Code42) and forgets
 * older ones, so a corrected host clock is followed within a minute.
 */
export interface Code42ClockOptions {
  /** Local clock. @defaultValue Date.now */
  local?: () => number;
  /** How long an observation counts. @defaultValue 60 s */
  windowMs?: number;
}

export class Code42Clock {
  private readonly local: () => number;
  private readonly windowMs: number;
  /** [localAt, offset] of recent observations, oldest first. */
  private samples: Array<[number, number]> = [];
  /** Largest Code42 time ever read from a session (fallback when no Date header arrives). */
  private seenFloor = 0;

  constructor(opts: Code42ClockOptions = {}) {
    this.local = opts.local ?? Date.now;
    this.windowMs = opts.windowMs ?? 60_000;
  }

  /** Records the `Date` header of a response received now; ignores a missing or unreadable one. */
  observe(dateHeader: string | undefined): void {
    if (!dateHeader) return;
    const date = Date.parse(dateHeader);
    if (!Number.isFinite(date)) return;
    const at = this.local();
    this.samples.push([at, date - at]);
    this.trim(at);
  }

  /** Records a time read from Code42's data (a session's `lastUpdated`, `endTime` ...): Code42's now is at least that. */
  observeDataTime(epochMs: number | null | undefined): void {
    if (typeof epochMs === 'number' && Number.isFinite(epochMs) && epochMs > this.seenFloor) this.seenFloor = epochMs;
  }

  /** Code42 − local, in ms, or null before any `Date` header was seen. */
  offsetMs(): number | null {
    this.trim(this.local());
    if (this.samples.length === 0) return null;
    let best = Number.NEGATIVE_INFINITY;
    for (const [, offset] of this.samples) if (offset > best) best = offset;
    return best;
  }

  /**
   * Code42's current time (a lower bound). Without any `Date` header: the latest time seen in Code42's
   * data, or null when there is none either (the caller decides; it never silently uses the local clock).
   */
  now(): number | null {
    const offset = this.offsetMs();
    if (offset !== null) return this.local() + offset;
    return this.seenFloor > 0 ? this.seenFloor : null;
  }

  private trim(at: number): void {
    while (this.samples.length > 1 && (this.samples[0] as [number, number])[0] < at - this.windowMs) this.samples.shift();
    if (this.samples.length > 64) this.samples = this.samples.slice(-64);
  }
}
