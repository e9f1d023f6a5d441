import type { Logger } from '../infra/logger.js';

/** Shapes of Code42 answers that are accepted but differ from what the API documents. */
export type Code42OddityKind = 'sessions_page_without_total_count';

export interface Code42Oddity {
  kind: Code42OddityKind;
  /** What was seen and what the daemon does about it, for the log line. */
  detail: string;
}

export type OddityListener = (oddity: Code42Oddity) => void;

export interface OddityLogOptions {
  logger: Logger;
  /** Called on every occurrence (a metric counts them). */
  count?: (kind: Code42OddityKind) => void;
}

/**
 * Records tolerated oddities of the Code42 API: one warning line per kind for the life of the process
 * (an oddity that comes with every poll would otherwise flood the log), every occurrence counted.
 */
export class OddityLog {
  private readonly logged = new Set<Code42OddityKind>();

  constructor(private readonly opts: OddityLogOptions) {}

  readonly record: OddityListener = (oddity) => {
    this.opts.count?.(oddity.kind);
    if (this.logged.has(oddity.kind)) return;
    this.logged.add(oddity.kind);
    this.opts.logger.warn({ oddity: oddity.kind }, `Code42 answer differs from the documented API (tolerated; logged once): ${oddity.detail}`);
  };
}
