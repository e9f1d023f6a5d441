/**
 * The two-way sync, wired on the job runtime: the update queue and its worker (session → incident), the
 * change sink the poller emits into, and the periodic state-sync run (XSOAR closes → Incydr), one per
 * deployment.
 */
import type { Queue } from 'bullmq';
import type { RedisConnection } from '../infra/redis.js';
import type { Registry } from 'prom-client';
import type { IncydrClient } from '../code42/incydr-client.js';
import { Code42AuthError } from '../code42/errors.js';
import { SessionActions } from '../code42/session-actions.js';
import type { Config } from '../config/load-config.js';
import type { DerivedSettings } from '../config/settings.js';
import type { Logger } from '../infra/logger.js';
import type { Ledger } from '../forward/ledger.js';
import { SessionEnricher } from '../forward/session-enricher.js';
import type { JobRuntime } from '../jobs/runtime.js';
import type { ScheduledJob } from '../jobs/scheduled-job.js';
import { UPDATE_QUEUE, type StateKeys } from '../store/keys.js';
import { XsoarAuthError } from '../xsoar/errors.js';
import { IncidentUpdates } from '../xsoar/incident-updates.js';
import { mappingOptions } from '../xsoar/mapping-options.js';
import type { XsoarClient } from '../xsoar/xsoar-client.js';
import { CountIndex } from '../poll/count-index.js';
import { IncidentUpdater } from './incident-updater.js';
import { SyncMetrics } from './sync-metrics.js';
import { SyncState } from './sync-state.js';
import { UpdateSink, updateJobPolicy, type UpdateJobData } from './update-queue.js';
import { XsoarCloseSync, type XsoarCloseSyncResult } from './xsoar-close-sync.js';
import { RECORD_GRACE_MS, describeSyncPlan, syncDirections, syncWrites } from './sync-plan.js';
import { SyncRefusals, refusalReadiness } from './refusals.js';
import type { ReadinessSource } from '../infra/health.js';

export interface SyncServiceOptions {
  config: Config;
  settings: DerivedSettings;
  runtime: JobRuntime;
  logger: Logger;
  /** The daemon's state connection (ledger, sync records). */
  redis: RedisConnection;
  keys: StateKeys;
  ledger: Pick<Ledger, 'incidentFor'>;
  /** The Incydr client with the shared request budget. */
  code42: IncydrClient;
  xsoar: XsoarClient;
  registry?: Registry;
  clock?: () => number;
}

export class SyncService {
  readonly state: SyncState;
  readonly sink: UpdateSink;
  readonly metrics: SyncMetrics;
  readonly closeSync: XsoarCloseSync;
  readonly schedule: ScheduledJob<XsoarCloseSyncResult>;
  /** Refused writes of the sync, kept for /readyz (the Readiness `sources` option takes `readinessSource`). */
  readonly refusals: SyncRefusals;
  readonly readinessSource: ReadinessSource;
  private readonly queue: Queue<UpdateJobData>;

  constructor(opts: SyncServiceOptions) {
    const { config, settings, runtime, logger } = opts;
    const clock = opts.clock ? { clock: opts.clock } : {};
    this.state = new SyncState(opts.redis, opts.keys.sync);
    this.metrics = new SyncMetrics(opts.registry);
    this.queue = runtime.workQueue<UpdateJobData>(UPDATE_QUEUE, updateJobPolicy(settings.retry));
    this.sink = new UpdateSink({ queue: this.queue, state: this.state, logger: logger.child({ component: 'sync' }), updateIntervalMs: config.sync.updateInterval, ...clock });
    const updates = new IncidentUpdates(opts.xsoar);
    const names = new SessionEnricher({ client: countingNames(opts.code42, this.metrics), includeFiles: false, cacheTtlMs: config.enrich.cacheTtl });
    // Refused writes (metric, /readyz, status), record expiry, and the start line saying what the sync writes where.
    this.refusals = new SyncRefusals(opts.redis, config.redis.prefix, this.metrics);
    this.readinessSource = refusalReadiness(this.refusals, syncDirections(config), 3 * Math.max(config.sync.interval, config.poll.interval));
    const retention = { deepLookbackMs: config.poll.deepLookback, graceMs: RECORD_GRACE_MS };
    logger.info({ stateSync: config.sync.stateSync, trackUpdates: config.sync.trackUpdates, writes: syncWrites(config) }, describeSyncPlan(config));
    new IncidentUpdater({
      runtime,
      concurrency: config.worker.concurrency,
      queue: this.queue,
      sink: this.sink,
      state: this.state,
      ledger: opts.ledger,
      updates,
      names,
      code42: opts.code42,
      mapping: mappingOptions(config),
      policy: {
        trackUpdates: settings.sync.trackUpdates,
        closeInXsoar: settings.sync.toXsoar,
        reopenOnNewData: config.sync.reopenOnNewData,
        stateCloseReasons: config.sync.stateCloseReasons,
      },
      metrics: this.metrics,
      refusals: this.refusals,
      retention,
      logger: logger.child({ component: 'updater' }),
      ...clock,
    });
    const counts = new CountIndex(opts.redis, opts.keys);
    this.closeSync = new XsoarCloseSync({
      // Its own closes are not news to the poller's counts (each would cost a count search).
      onStateWritten: (ids, state) => counts.markState(ids, !(config.code42.states as readonly string[]).includes(state)),
      redis: opts.redis,
      state: this.state,
      ledger: opts.ledger,
      updates,
      actions: new SessionActions(opts.code42),
      code42: opts.code42,
      sink: this.sink,
      incidentType: config.xsoar.incidentType,
      enabled: settings.sync.toCode42,
      closeReasonStates: config.sync.closeReasonStates,
      intervalMs: config.sync.interval,
      firstLookMs: config.poll.firstFetch,
      metrics: this.metrics,
      refusals: this.refusals,
      retention,
      held: { closeInXsoar: settings.sync.toXsoar, stateCloseReasons: config.sync.stateCloseReasons, trackUpdates: settings.sync.trackUpdates },
      logger: logger.child({ component: 'state-sync' }),
      ...clock,
    });
    const log = logger.child({ component: 'state-sync' });
    this.schedule = runtime.scheduled<XsoarCloseSyncResult>({
      name: 'state sync',
      scheduleKey: opts.keys.stateSyncSchedule,
      leaseKey: opts.keys.stateSyncLock,
      everyMs: config.sync.interval,
      // The first look comes one interval after the schedule is created: a starting daemon has nothing to
      // carry yet, and its first requests stay the ones that tell whether the credentials work.
      firstDelayMs: config.sync.interval,
      run: ({ signal }) => this.closeSync.runOnce(signal),
      logger: log,
      // Refused credentials are reported by the work queues (one line per pause); here they are a warning.
      isWarning: (err) => err instanceof XsoarAuthError || err instanceof Code42AuthError,
    });
  }
}

/** The name look-ups of the updater, counted as Code42 calls of the sync (cache misses only). */
function countingNames(client: IncydrClient, metrics: SyncMetrics): Pick<IncydrClient, 'getActor' | 'getRule' | 'getSessionEvents'> {
  return {
    getActor: (id) => {
      metrics.code42('actors.get');
      return client.getActor(id);
    },
    getRule: (id) => {
      metrics.code42('rules.get');
      return client.getRule(id);
    },
    getSessionEvents: (id) => client.getSessionEvents(id),
  };
}
