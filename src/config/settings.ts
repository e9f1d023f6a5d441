import type { SessionState, SeverityWord } from '../code42/vocabulary.js';
import type { Config } from './load-config.js';

/** The poller's slice of the configuration (ALERT_*, POLL_INTERVAL, FIRST_FETCH, LOOKBACK, DEEP_LOOKBACK, SWEEP_INTERVAL). */
export interface PollSettings {
  severities: readonly SeverityWord[];
  states: readonly SessionState[];
  firstFetchMs: number;
  lookbackMs: number;
  deepLookbackMs: number;
  sweepIntervalMs: number;
  pollIntervalMs: number;
  /** How often a poll's first read is the listing outside the state filter, and how often the one inside the severity filter (COUNT_PROBE_INTERVAL). */
  probeIntervalMs: number;
  /** Half of what the request budget allows in one poll interval: a poll fits its interval with room for forwarding. */
  maxSweepPagesPerPoll: number;
}

/** How jobs of the work queues are retried (WORKER_ATTEMPTS, WORKER_BACKOFF, KEEP_COMPLETED). */
export interface RetrySettings {
  attempts: number;
  backoffMs: number;
  keepCompletedMs: number;
}

/** What the two-way sync does, decoded once from TRACK_UPDATES and STATE_SYNC. */
export interface SyncDirections {
  /** Session changes update their incidents (TRACK_UPDATES). */
  trackUpdates: boolean;
  /** Sessions closed in Incydr close their incidents (STATE_SYNC both / to-xsoar). */
  toXsoar: boolean;
  /** Incidents closed in XSOAR set their sessions' state (STATE_SYNC both / to-code42). */
  toCode42: boolean;
  /** Any of the above: change records go to the incident updater; otherwise to the capped stream. */
  enabled: boolean;
}

/** Values derived from the configuration, computed here once so no component restates a rule. */
export interface DerivedSettings {
  retry: RetrySettings;
  poll: PollSettings;
  sync: SyncDirections;
  /**
   * Consecutive transient failures of an upstream that open its circuit: at least 2 and below the attempts,
   * so a session that alone keeps failing (the probe finds the upstream up) still reaches the failed set.
   */
  breakerThreshold: number;
  /** Sweeps hold back while this many sessions wait to be forwarded (forwarding comes first). */
  sweepYieldBacklog: number;
  /** How often the state marker is checked (Redis losing its data is noticed within this). */
  stateMarkerCheckMs: number;
  /**
   * How long after Redis lost its data sessions from before may still be queued (first fetch + look-back +
   * settle + the whole retry budget), capped at 7 days: older sessions are searched in XSOAR that long.
   */
  stateDoubtMs: number;
}

/** TRACK_UPDATES and STATE_SYNC decoded into directions: the one place that reads STATE_SYNC's words. */
export function syncDirectionsOf(sync: Pick<Config['sync'], 'stateSync' | 'trackUpdates'>): SyncDirections {
  const toXsoar = sync.stateSync === 'both' || sync.stateSync === 'to-xsoar';
  const toCode42 = sync.stateSync === 'both' || sync.stateSync === 'to-code42';
  return { trackUpdates: sync.trackUpdates, toXsoar, toCode42, enabled: sync.trackUpdates || toXsoar || toCode42 };
}

export function deriveSettings(config: Config): DerivedSettings {
  const { worker, poll, code42, xsoar } = config;
  return {
    retry: { attempts: worker.attempts, backoffMs: worker.backoff, keepCompletedMs: worker.keepCompleted },
    sync: syncDirectionsOf(config.sync),
    breakerThreshold: Math.max(2, Math.min(config.upstream.failureThreshold, worker.attempts - 1)),
    poll: {
      severities: code42.severities,
      states: code42.states,
      firstFetchMs: poll.firstFetch,
      lookbackMs: poll.lookback,
      deepLookbackMs: poll.deepLookback,
      sweepIntervalMs: poll.sweepInterval,
      pollIntervalMs: poll.interval,
      probeIntervalMs: poll.countProbeInterval,
      maxSweepPagesPerPoll: Math.max(1, Math.min(50, Math.floor((code42.rateLimit * poll.interval) / 60_000 / 2))),
    },
    sweepYieldBacklog: 2 * worker.concurrency,
    stateMarkerCheckMs: Math.max(250, Math.min(poll.interval, 5_000)),
    stateDoubtMs: Math.min(7 * 86_400_000, poll.firstFetch + poll.lookback + xsoar.searchSettle + worker.backoff * (2 ** Math.min(worker.attempts, 20) - 1)),
  };
}
