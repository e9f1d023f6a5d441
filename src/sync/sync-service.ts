/**
 * The two-way sync, wired: the update queue and its worker (session → incident), the change sink the
 * poller emits into, and the periodic state-sync pass (XSOAR closes → Incydr) on a BullMQ Job
 * Scheduler shared by every replica.
 */
import { Queue, Worker } from 'bullmq';
import type { Redis } from 'ioredis';
import type { IncydrClient } from '../code42/incydr-client.js';
import { Code42AuthError } from '../code42/errors.js';
import { SessionActions } from '../code42/session-actions.js';
import { XsoarAuthError } from '../xsoar/errors.js';
import type { Config } from '../config/load-config.js';
import type { Logger } from '../infra/logger.js';
import type { Ledger } from '../forward/ledger.js';
import { forwardJobPolicy } from '../jobs/queues.js';
import { SessionEnricher } from '../forward/session-enricher.js';
import { mappingOptions } from '../xsoar/mapping-options.js';
import { IncidentUpdates } from '../xsoar/incident-updates.js';
import type { XsoarClient } from '../xsoar/xsoar-client.js';
import { IncidentUpdater } from './incident-updater.js';
import { SyncMetrics } from './sync-metrics.js';
import { SyncState, syncKeys } from './sync-state.js';
import { STATE_SYNC_QUEUE, STATE_SYNC_SCHEDULER_ID, UpdateSink, createUpdateQueue, type UpdateJobData } from './update-queue.js';
import { XsoarCloseSync } from './xsoar-close-sync.js';
import { RECORD_GRACE_MS, describeSyncPlan, syncDirections, syncWrites } from './sync-plan.js';
import { SyncRefusals, refusalReadiness } from './refusals.js';
import type { ReadinessSource } from '../ops/readiness.js';
import type { Registry } from 'prom-client';

export interface SyncServiceOptions {
  config: Config;
  logger: Logger;
  /** Opens a named Redis connection that the caller closes at shutdown. */
  connect: (name: string) => Redis;
  /** The daemon's state connection (ledger, sync records). */
  redis: Redis;
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
  /** Refused writes of the sync, kept for /readyz (the Readiness `sources` option takes `readinessSource`). */
  readonly refusals: SyncRefusals;
  readonly readinessSource: ReadinessSource;
  private readonly queue: Queue<UpdateJobData>;
  private readonly updater: IncidentUpdater;
  private schedulerQueue: Queue | undefined;
  private schedulerWorker: Worker | undefined;

  constructor(private readonly opts: SyncServiceOptions) {
    const { config, logger } = opts;
    this.state = new SyncState(opts.redis, syncKeys(config.redis.prefix));
    this.metrics = new SyncMetrics(opts.registry);
    this.queue = createUpdateQueue(opts.connect('c42x-update-queue'), config.redis.prefix, forwardJobPolicy(config));
    this.queue.on('error', (err) => logger.debug({ err }, 'update queue error'));
    this.sink = new UpdateSink({ queue: this.queue, state: this.state, logger: logger.child({ component: 'sync' }), updateIntervalMs: config.sync.updateInterval });
    const updates = new IncidentUpdates(opts.xsoar);
    const names = new SessionEnricher({ client: countingNames(opts.code42, this.metrics), includeFiles: false, cacheTtlMs: config.enrich.cacheTtl });
    const toXsoar = config.sync.stateSync === 'both' || config.sync.stateSync === 'to-xsoar';
    const toCode42 = config.sync.stateSync === 'both' || config.sync.stateSync === 'to-code42';
    // --- safe sync: refused writes, record expiry, and the start line (sync-plan.ts) ---
    this.refusals = new SyncRefusals(opts.redis, config.redis.prefix, this.metrics);
    this.readinessSource = refusalReadiness(this.refusals, syncDirections(config), 3 * Math.max(config.sync.interval, config.poll.interval));
    const retention = { deepLookbackMs: config.poll.deepLookback, graceMs: RECORD_GRACE_MS };
    logger.info({ stateSync: config.sync.stateSync, trackUpdates: config.sync.trackUpdates, writes: syncWrites(config) }, describeSyncPlan(config));
    // --- end safe sync ---
    this.updater = new IncidentUpdater({
      connection: opts.connect('c42x-update-worker'),
      prefix: config.redis.prefix,
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
        trackUpdates: config.sync.trackUpdates,
        closeInXsoar: toXsoar,
        reopenOnNewData: config.sync.reopenOnNewData,
        stateCloseReasons: config.sync.stateCloseReasons,
      },
      metrics: this.metrics,
      refusals: this.refusals,
      retention,
      logger: logger.child({ component: 'updater' }),
      lockDurationMs: config.worker.lockDuration,
      ...(opts.clock ? { clock: opts.clock } : {}),
    });
    this.closeSync = new XsoarCloseSync({
      redis: opts.redis,
      state: this.state,
      ledger: opts.ledger,
      updates,
      actions: new SessionActions(opts.code42),
      code42: opts.code42,
      sink: this.sink,
      incidentType: config.xsoar.incidentType,
      enabled: toCode42,
      closeReasonStates: config.sync.closeReasonStates,
      intervalMs: config.sync.interval,
      firstLookMs: config.poll.firstFetch,
      metrics: this.metrics,
      refusals: this.refusals,
      retention,
      held: { closeInXsoar: toXsoar, stateCloseReasons: config.sync.stateCloseReasons },
      logger: logger.child({ component: 'state-sync' }),
      ...(opts.clock ? { clock: opts.clock } : {}),
    });
  }

  async start(): Promise<void> {
    const { config, logger } = this.opts;
    this.updater.start();
    const connection = this.opts.connect('c42x-state-sync');
    this.schedulerQueue = new Queue(STATE_SYNC_QUEUE, {
      connection,
      prefix: config.redis.prefix,
      defaultJobOptions: { removeOnComplete: { count: 50 }, removeOnFail: { count: 200 }, attempts: 1 },
    });
    this.schedulerQueue.on('error', (err) => logger.debug({ err }, 'state-sync queue error'));
    await this.schedulerQueue.setGlobalConcurrency(1);
    // The first look comes one interval after start: a starting daemon has nothing to carry yet, and
    // its first requests stay the ones that tell whether the credentials work.
    await this.schedulerQueue.upsertJobScheduler(
      STATE_SYNC_SCHEDULER_ID,
      { every: config.sync.interval, startDate: Date.now() + config.sync.interval },
      { name: 'state-sync', data: {} },
    );
    let lastError = '';
    this.schedulerWorker = new Worker(STATE_SYNC_QUEUE, async () => this.closeSync.runOnce(), {
      connection,
      prefix: config.redis.prefix,
      concurrency: 1,
      lockDuration: config.worker.lockDuration,
      stalledInterval: config.worker.lockDuration,
    });
    this.schedulerWorker.on('failed', (_job, err) => {
      // Refused credentials are reported by the forward worker (one line per pause); here they are a warning.
      const refused = err instanceof XsoarAuthError || err instanceof Code42AuthError;
      if (err.message !== lastError) logger[refused ? 'warn' : 'error']({ err }, 'state sync failed; the next run covers the same window');
      lastError = err.message;
    });
    this.schedulerWorker.on('completed', () => (lastError = ''));
    this.schedulerWorker.on('error', (err) => logger.error({ err }, 'state-sync worker error'));
  }

  async stop(force = false): Promise<void> {
    await this.schedulerWorker?.close(force);
    await this.updater.close(force);
    await this.schedulerQueue?.close();
    await this.queue.close();
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
