import type { Queue } from 'bullmq';
import { Code42Clock } from './code42/code42-clock.js';
import { OddityLog } from './code42/oddities.js';
import { RequestBudget } from './code42/request-budget.js';
import { describeConfig, type Config } from './config/load-config.js';
import { deriveSettings } from './config/settings.js';
import { Ledger } from './forward/ledger.js';
import { ForwardWorker } from './forward/forward-worker.js';
import { SessionEnricher } from './forward/session-enricher.js';
import { StateMarker } from './guard/state-marker.js';
import { guardOptions } from './guard/guard-options.js';
import { UpstreamStatus } from './guard/upstream-status.js';
import type { Logger } from './infra/logger.js';
import { closeRedis, createRedis, type RedisConnection } from './infra/redis.js';
import { announceClusterPrefix, warnOnEvictionPolicy, watchRedis } from './infra/redis-watch.js';
import { removeLegacySchedules } from './jobs/legacy-schedules.js';
import { JobRuntime, within } from './jobs/runtime.js';
import { ForwarderMetrics } from './ops/metrics.js';
import { metricSources } from './ops/metric-sources.js';
import { pollerReadMetrics } from './ops/poller-read-metrics.js';
import { Readiness, type ReadinessReport } from './ops/readiness.js';
import { PollState, requestWindowReread } from './poll/poll-state.js';
import { Poller } from './poll/poller.js';
import { IdResolver } from './forward/id-resolver.js';
import { eventsWorthKeeping } from './xsoar/body-budget.js';
import type { SessionChangeSink } from './poll/session-change.js';
import { FORWARD_QUEUE, stateKeys, type StateKeys } from './store/keys.js';
import { SyncService } from './sync/sync-service.js';
import { createIncydrClient, createXsoarClient } from './upstreams.js';
import { mappingOptions } from './xsoar/mapping-options.js';
import { packageVersion } from './infra/version.js';

export interface DaemonOptions {
  config: Config;
  logger: Logger;
  /** Metrics registry to report into; one is made when not given. */
  metrics?: ForwarderMetrics;
  clock?: () => number;
}

/**
 * The composition root: opens the Redis connections, builds the upstream clients and the job runtime,
 * and wires the three flows onto it (poll → forward queue → XSOAR; session changes → update queue →
 * XSOAR; XSOAR closes → Incydr). Policy lives in the parts; this file only connects them.
 */
export class Daemon {
  readonly keys: StateKeys;
  readonly status = new UpstreamStatus();
  readonly metrics: ForwarderMetrics;
  private readonly connections: RedisConnection[] = [];
  private readonly startedAt = Date.now();
  private runtime: JobRuntime | undefined;
  private stateMarker: StateMarker | undefined;
  private pollerInstance: Poller | undefined;
  private readinessProbe: Readiness | undefined;
  private sync: SyncService | undefined;
  private stopping = false;

  constructor(private readonly opts: DaemonOptions) {
    this.keys = stateKeys(opts.config.redis.prefix);
    this.metrics = opts.metrics ?? new ForwarderMetrics({}, { defaultMetrics: false });
  }

  private connect(name: string, role: 'worker' | 'command' = 'worker'): RedisConnection {
    const redis = createRedis({ url: this.opts.config.redis.url, password: this.opts.config.redis.password, name, role });
    redis.on('error', (err) => this.opts.logger.debug({ err, connection: name }, 'redis connection error'));
    this.connections.push(redis);
    return redis;
  }

  async start(): Promise<void> {
    const { config, logger, clock } = this.opts;
    const at = clock ? { clock } : {};
    const { metrics, keys, status } = this;
    const settings = deriveSettings(config);
    logger.info({ version: packageVersion(), node: process.version, config: describeConfig(config) }, 'starting');
    announceClusterPrefix(config.redis.prefix, config.redis.url, logger);
    const state = this.connect('c42x-state');
    watchRedis(state, { url: config.redis.url, logger, stopping: () => this.stopping });
    const health = this.connect('c42x-health', 'command');
    const pollState = new PollState(state, keys);

    const budget = new RequestBudget({ redis: state, prefix: config.redis.prefix, perMinute: config.code42.rateLimit, onWait: (ms) => metrics.rateLimitWait('code42', ms) });
    const code42Clock = new Code42Clock(clock ? { local: clock } : {});
    const oddities = new OddityLog({ logger: logger.child({ component: 'code42' }), count: (kind) => metrics.code42Oddity(kind) });
    const code42 = createIncydrClient(config, { budget, serverClock: code42Clock, observer: metrics.observer, onOddity: oddities.record, ...at });
    const code42Probe = createIncydrClient(config, { budget, observer: metrics.observer, retryLimit: 0 });
    if (config.xsoar.tlsInsecure) logger.warn('XSOAR_TLS_INSECURE is on: the XSOAR certificate is not verified');
    const xsoar = createXsoarClient(config, { observer: metrics.observer });

    // Blocks until Redis answers: a daemon started before Redis waits instead of crash-looping.
    await warnOnEvictionPolicy(state, logger);

    const runtime = new JobRuntime({
      ...{ prefix: config.redis.prefix, connect: (name: string) => this.connect(name), redis: state, logger, status },
      lockDurationMs: config.worker.lockDuration,
      ...guardOptions(config, settings, { xsoar, code42Probe, logger, memoryProbeKey: keys.memoryProbe, onOutage: (u) => metrics.upstreamOutage(u) }),
      ...at,
    });
    this.runtime = runtime;
    const forwardQueue: Queue = runtime.workQueue(FORWARD_QUEUE, settings.retry);
    const ledger = new Ledger(state, keys);
    this.readinessProbe = new Readiness({
      redis: health,
      pollState,
      pollLockKey: keys.pollLock,
      status,
      pollIntervalMs: config.poll.interval,
      startedAt: this.startedAt,
      shuttingDown: () => this.stopping,
      guards: runtime,
      // The sync's refused writes (degraded, never unready).
      sources: () => (this.sync ? [this.sync.readinessSource] : []),
      ...at,
    });
    metrics.setSources(metricSources({ forwardQueue, pollState, ledger, health, runtime }));

    // Redis losing its data (no AOF, an empty replica, a flush) is noticed by a marker key; then older sessions
    // are searched in XSOAR before any create, and the schedules are due at once.
    this.stateMarker = new StateMarker({
      redis: state,
      keys,
      logger: logger.child({ component: 'state' }),
      checkIntervalMs: settings.stateMarkerCheckMs,
      doubtTtlMs: settings.stateDoubtMs,
      xsoarHoldsAny: () => xsoar.holdsAnyForwardedIncident(),
      onLoss: () => runtime.ensureSchedules(),
      requestReread: (since) => requestWindowReread(state, keys, since),
      onLossCounted: () => metrics.redisStateLost(),
      ...at,
    });
    const mapping = mappingOptions(config);
    new ForwardWorker({
      ...{ runtime, queue: forwardQueue, prefix: config.redis.prefix, concurrency: config.worker.concurrency, ledger, xsoar, mapping, status },
      enricher: new SessionEnricher({ client: code42, includeFiles: config.enrich.includeFiles, cacheTtlMs: config.enrich.cacheTtl, eventsKeep: eventsWorthKeeping(mapping) }),
      searchSettleMs: config.xsoar.searchSettle,
      stateLoss: this.stateMarker,
      logger: logger.child({ component: 'worker' }),
      events: metrics.workerEvents,
      ...at,
    });
    // Changes of forwarded sessions, seen by the poller, go to the incident updater's queue.
    if (settings.sync.enabled) {
      this.sync = new SyncService({ config, settings, runtime, logger, redis: state, keys, ledger, code42, xsoar, registry: metrics.registry, ...at });
    }
    const poller = (this.pollerInstance = new Poller({
      client: code42,
      redis: state,
      queue: forwardQueue,
      keys,
      ...settings.poll,
      logger: logger.child({ component: 'poller' }),
      events: { ...metrics.pollerEvents, onReads: pollerReadMetrics(metrics.registry), onPoll: (o, ms, err) => (metrics.pollerEvents.onPoll?.(o, ms, err), status.observe('code42', o, err)) },
      code42Clock,
      ...(this.sync ? { changeSink: this.sync.sink } : {}),
      // Forwarding comes first: with a backlog the sweeps wait (unless a cycle is overdue).
      shouldYield: async () => (await forwardQueue.getWaitingCount()) >= settings.sweepYieldBacklog,
      ...at,
    }));
    // Ids of creates XSOAR accepted without one are looked up apart from the forward jobs, many per search.
    const ids = new IdResolver({ ledger, xsoar, queue: forwardQueue, incidentType: config.xsoar.incidentType, settleMs: config.xsoar.searchSettle, logger: logger.child({ component: 'id-resolver' }), events: metrics.workerEvents });
    runtime.scheduled({ name: 'id lookup', scheduleKey: keys.idLookupSchedule, leaseKey: keys.idLookupLock, everyMs: 1_000, run: () => ids.runOnce(), logger: logger.child({ component: 'id-resolver' }) });
    runtime.scheduled({
      name: 'poll',
      scheduleKey: keys.pollSchedule,
      leaseKey: keys.pollLock,
      everyMs: config.poll.interval,
      run: (run) => poller.runOnce(run),
      logger: logger.child({ component: 'scheduler' }),
    });
    if (this.stopping) return;
    await this.stateMarker.start();
    await removeLegacySchedules(this.connect('c42x-legacy', 'command'), config.redis.prefix, logger);
    runtime.start();
    logger.info({ pollIntervalMs: config.poll.interval, concurrency: config.worker.concurrency }, 'started');
  }

  /** The poller, once started: its schedule runs it; tools and the bench can run one poll with `runOnce()`. */
  get poller(): Poller | undefined {
    return this.pollerInstance;
  }

  /** Where change records of forwarded sessions go (the incident updater's queue); none when the sync is off. */
  get changeSink(): SessionChangeSink | undefined {
    return this.sync?.sink;
  }

  async readiness(): Promise<ReadinessReport> {
    if (!this.readinessProbe) return { ready: false, checks: { start: { ok: false, detail: 'starting' } } };
    return this.readinessProbe.check();
  }

  /**
   * Graceful stop within `deadlineMs`: readiness goes false, no run or job starts any more, running ones
   * finish or are handed back to their queue, then connections close.
   */
  async stop(deadlineMs = 25_000): Promise<void> {
    this.stopping = true;
    this.stateMarker?.stop();
    const deadline = Date.now() + deadlineMs;
    if (this.runtime) await this.runtime.stop(deadlineMs - 1_000);
    await within(Promise.all(this.connections.map((c) => closeRedis(c))), Math.max(200, deadline - Date.now()));
    for (const c of this.connections) if (c.status !== 'end') c.disconnect();
    this.opts.logger.info('stopped');
  }
}
