/**
 * A change of an already-forwarded session, noticed by the poller or a sweep while re-reading it
 * (no extra Code42 call). The poller emits these; the incident updater turns them into XSOAR updates.
 *
 * Contract between the two halves: the record carries the whole session as read (so the consumer never
 * needs to call Code42 again for it) and which aspects changed since the snapshot the tracker kept.
 */
import type { Session } from '../code42/schemas.js';

/** What changed, compared with the last snapshot kept for the session. */
export type SessionChangeKind =
  /** `lastUpdated` moved (always set when anything else is, may be set alone). */
  | 'updated'
  /** The highest severity in the score history changed (up or down). */
  | 'severity'
  /** The current state (latest entry of the state history) changed. */
  | 'state'
  /** New triggered alerts (new alert ids). */
  | 'alerts'
  /** The event counts (critical/high/moderate/low/noRisk) changed: new file events to fetch. */
  | 'events';

export interface SessionChange {
  sessionId: string;
  /** Monotonic per session: 1 for the first change after the create, then 2, 3, ... */
  seq: number;
  kinds: SessionChangeKind[];
  /** When the change was noticed (epoch ms, Code42's clock where known). */
  detectedAt: number;
  /** The session as just read from Code42. */
  session: Session;
  /** What the tracker knew before (so a consumer can say "severity HIGH → CRITICAL"). */
  previous: SessionSnapshot;
}

/** What the tracker keeps per tracked session in Redis (small: no events, no text). */
export interface SessionSnapshot {
  lastUpdated: number | null;
  /** Highest severity in the score history, 0–4. */
  severity: number;
  /** Current state, as the stock integration derives it. */
  state: string;
  /** Triggered alert ids, sorted. */
  alertIds: string[];
  /** Sum of the session's per-severity event counts. */
  eventCount: number;
}

/** Where change records go. The default sink appends to a Redis stream; the updater plugs in its own. */
export interface SessionChangeSink {
  emit(change: SessionChange): Promise<void>;
}
