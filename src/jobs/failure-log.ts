import type { Logger } from '../infra/logger.js';

export interface FailureLogOptions {
  logger: Logger;
  /** A failure identical to one logged less than this long ago is counted, not logged. @defaultValue 30000 */
  windowMs?: number;
  clock?: () => number;
}

interface Entry {
  loggedAt: number;
  suppressed: number;
  alertIds: string[];
  level: 'warn' | 'error';
  summary: (count: number, seconds: number) => string;
  timer: NodeJS.Timeout | undefined;
}

/** Alert ids listed on a summary line; the rest are only counted. */
const MAX_IDS = 10;

/**
 * One line per distinct failure: the first occurrence is logged with its reason and what happens next;
 * identical ones within the window (a closed port fails every job the same way) are counted, and one
 * summary line with the count and the alert ids follows when the window ends.
 */
export class FailureLog {
  private readonly entries = new Map<string, Entry>();
  private readonly windowMs: number;
  private readonly clock: () => number;

  constructor(private readonly opts: FailureLogOptions) {
    this.windowMs = opts.windowMs ?? 30_000;
    this.clock = opts.clock ?? Date.now;
  }

  /**
   * Logs `message` with `fields` unless `key` was logged within the window. `alertId` is the session
   * the failure is about; `fields` should hold the reason and what happens next; `summary` words the
   * line that counts the ones not logged.
   */
  log(
    level: 'warn' | 'error',
    key: string,
    alertId: string,
    fields: Record<string, unknown>,
    message: string,
    summary: (count: number, seconds: number) => string,
  ): void {
    const now = this.clock();
    const entry = this.entries.get(key);
    if (entry && now - entry.loggedAt < this.windowMs) {
      entry.suppressed += 1;
      if (entry.alertIds.length < MAX_IDS) entry.alertIds.push(alertId);
      if (!entry.timer) {
        entry.timer = setTimeout(() => this.summarise(key), Math.max(0, entry.loggedAt + this.windowMs - now));
        entry.timer.unref();
      }
      return;
    }
    if (entry) this.summarise(key);
    this.opts.logger[level]({ alertId, ...fields }, message);
    this.entries.set(key, { loggedAt: now, suppressed: 0, alertIds: [], level, summary, timer: undefined });
  }

  /** Writes the pending summary lines now (shutdown). */
  flush(): void {
    for (const key of [...this.entries.keys()]) this.summarise(key);
    this.entries.clear();
  }

  private summarise(key: string): void {
    const entry = this.entries.get(key);
    if (!entry) return;
    clearTimeout(entry.timer);
    entry.timer = undefined;
    if (entry.suppressed === 0) return;
    const seconds = Math.max(1, Math.round((this.clock() - entry.loggedAt) / 1000));
    this.opts.logger[entry.level](
      { repeated: entry.suppressed, alertIds: entry.alertIds, moreAlerts: Math.max(0, entry.suppressed - entry.alertIds.length) },
      entry.summary(entry.suppressed, seconds),
    );
    entry.suppressed = 0;
    entry.alertIds = [];
  }
}
