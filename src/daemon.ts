import type { Queue } from 'bullmq';
import type { Redis } from 'ioredis';
import { Code42Clock } from './code42/code42-clock.js';
import { Code42AuthError } from './code42/errors.js';
import { OddityLog } from './code42/oddities.js';
import { RequestBudget } from './code42/request-budget.js';
import { describeConfig, type Config } from './config/load-config.js';
import type { Logger } from './infra/logger.js';
import { closeRedis, createRedis, maskRedisUrl } from './infra/redis.js';
import { withTimeout } from './infra/timeout.js';
import { ForwarderMetrics } from './ops/metrics.js';
import { pollerReadMetrics } from './ops/poller-read-metrics.js';
import { Readiness, type ReadinessReport } from './ops/readiness.js';
import { ForwardWorker, LIMITER_MAX } from './forward/forward-worker.js';
import { stateKeys, type StateKeys } from './store/keys.js';
import { Ledger } from './forward/ledger.js';
import { StateMarker } from './guard/state-marker.js';
import { PollScheduler } from './poll/poll-scheduler.js';
import { PollState } from './poll/poll-state.js';
import { Poller, type PollerEvents } from './poll/poller.js';
import { createForwardQueue, forwardJobPolicy } from './jobs/queues.js';
import { SessionEnricher } from './forward/session-enricher.js';
import { UpstreamStatus, type Upstream } from './guard/upstream-status.js';
import { CircuitBreaker } from './guard/circuit-breaker.js';
import { RedisMemoryGuard, isRedisOomError, readRedisMemory } from './guard/redis-memory.js';
import { createIncydrClient, createXsoarClient } from './upstreams.js';
import type { IncydrClient } from './code42/incydr-client.js';
import type { XsoarClient } from './xsoar/xsoar-client.js';
import type { SessionChangeSink } from './poll/session-change.js';
import { SyncService } from './sync/sync-service.js';
import { mappingOptions } from './xsoar/mapping-options.js';

/** A session id no alert has: the probes ask for it, and any answer (even "not found") means "up". */
const PROBE_SESSION_ID = 'c42x-upstream-probe';

export interface DaemonOptions {
  config: Config;
  logger: Logger;
  /** Metrics registry to report into; one is made when not given. */
  metrics?: ForwarderMetrics;
  clock?: () => number;
}

/** Runs `p` but gives up waiting after `ms` (the work itself may go on). */
async function within<T>(p: Promise<T>, ms: number): Promise<'done' | 'timeout'> {
  let timer: NodeJS.Timeout | undefined;
  const timeout = new Promise<'timeout'>((resolve) => {
    timer = setTimeout(() => resolve('timeout'), Math.max(0, ms));
  });
  try {
    return await Promise.race([p.then(() => 'done' as const), timeout]);
  } finally {
    clearTimeout(timer);
  }
}

/**
 * The running forwarder: Redis connections, both upstream clients, the forward queue, the poll
 * scheduler and the forward workers, started and stopped in order.
 */
export class Daemon {
  readonly keys: StateKeys;
  readonly status = new UpstreamStatus();
  readonly metrics: ForwarderMetrics;
  private readonly connections: Redis[] = [];
  private readonly startedAt = Date.now();
  private scheduler: PollScheduler | undefined;
  private stateMarker: StateMarker | undefined;
  private forwardQueue: Queue | undefined;
  private worker: ForwardWorker | undefined;
  private readinessProbe: Readiness | undefined;
  private breaker: CircuitBreaker | undefined;
  private memoryGuard: RedisMemoryGuard | undefined;
  private stopping = false;
  private sync: SyncService | undefined;

  constructor(private readonly opts: DaemonOptions) {
    this.keys = stateKeys(opts.config.redis.prefix);
    this.metrics = opts.metrics ?? new ForwarderMetrics({}, { defaultMetrics: false });
  }

  private connect(name: string, role: 'worker' | 'command' = 'worker'): Redis {
    const redis = createRedis({ url: this.opts.config.redis.url, password: this.opts.config.redis.password, name, role });
    redis.on('error', (err) => this.opts.logger.debug({ err, connection: name }, 'redis connection error'));
    this.connections.push(redis);
    return redis;
  }

  /**
   * The first connection reports outages once, not once per reconnect attempt: one line naming the
   * (masked) URL and the error, written at the first error after the connection dropped.
   */
  private watchRedis(redis: Redis): void {
    let down = false;
    let reported = false;
    let fallback: NodeJS.Timeout | undefined;
    const url = maskRedisUrl(this.opts.config.redis.url);
    const report = (error: string): void => {
      clearTimeout(fallback);
      if (reported || this.stopping) return;
      reported = true;
      this.opts.logger.warn({ redisUrl: url, error }, `Redis is unreachable at ${url} (${error}); waiting for it (nothing is lost, work resumes when it is back)`);
    };
    redis.on('close', () => {
      if (down || this.stopping) return;
      down = true;
      reported = false;
      // The error that explains the drop usually follows the close; report without one after a second.
      fallback = setTimeout(() => report('connection closed'), 1_000);
      fallback.unref();
    });
    redis.on('error', (err: Error) => {
      if (down) report(err.message || (err as NodeJS.ErrnoException).code || err.name);
    });
    redis.on('ready', () => {
      if (!down) return;
      down = false;
      clearTimeout(fallback);
      if (reported) this.opts.logger.info({ redisUrl: url }, 'Redis is reachable again; resuming');
    });
  }

  async start(): Promise<void> {
    const { config, logger } = this.opts;
    const metrics = this.metrics;
    logger.info({ config: describeConfig(config) }, 'starting');
    const state = this.connect('c42x-state');
    this.watchRedis(state);
    const queueConnection = this.connect('c42x-queue');
    const pollState = new PollState(state, this.keys);
    const health = this.connect('c42x-health', 'command');
    this.readinessProbe = new Readiness({
      redis: health,
      pollState,
      pollLockKey: this.keys.pollLock,
      status: this.status,
      pollIntervalMs: config.poll.interval,
      startedAt: this.startedAt,
      shuttingDown: () => this.stopping,
      outages: () => this.breaker?.openCircuits() ?? new Map(),
      redisFull: () => this.memoryGuard?.state(),
      ...(this.opts.clock ? { clock: this.opts.clock } : {}),
    });

    const budget = new RequestBudget({
      redis: state,
      prefix: config.redis.prefix,
      perMinute: config.code42.rateLimit,
      onWait: (ms) => metrics.rateLimitWait('code42', ms),
    });
    const code42Clock = new Code42Clock(this.opts.clock ? { local: this.opts.clock } : {});
    const client = createIncydrClient(config, {
      budget,
      serverClock: code42Clock,
      observer: metrics.observer,
      onOddity: new OddityLog({ logger: logger.child({ component: 'code42' }), count: (kind) => metrics.code42Oddity(kind) }).record,
      ...(this.opts.clock ? { clock: this.opts.clock } : {}),
    });
    if (config.xsoar.tlsInsecure) logger.warn('XSOAR_TLS_INSECURE is on: the XSOAR certificate is not verified');
    const xsoar = createXsoarClient(config, { observer: metrics.observer });

    // Blocks until Redis answers: a daemon started before Redis waits instead of crash-looping.
    await this.warnOnEvictionPolicy(state);

    this.forwardQueue = createForwardQueue(queueConnection, config.redis.prefix, forwardJobPolicy(config));
    this.forwardQueue.on('error', (err) => logger.debug({ err }, 'forward queue error'));
    const queue = this.forwardQueue;
    const ledger = new Ledger(state, this.keys);
    this.metricsSources(queue, pollState, ledger, health);

    const status = this.status;
    const pollerEvents: PollerEvents = {
      ...metrics.pollerEvents,
      onReads: pollerReadMetrics(metrics.registry),
      onPoll: (outcome, durationMs, error) => {
        metrics.pollerEvents.onPoll?.(outcome, durationMs, error);
        if (outcome === 'ok') status.markOk('code42');
        if (error instanceof Code42AuthError) status.markAuthFailure('code42', error.message);
        if (isRedisOomError(error)) void this.memoryGuard?.refused((error as Error).message);
      },
    };
    // Changes of forwarded sessions, seen by the poller, go to the incident updater's queue.
    if (config.sync.trackUpdates || config.sync.stateSync !== 'off') {
      this.sync = new SyncService({
        config,
        logger,
        connect: (name) => this.connect(name),
        redis: state,
        ledger,
        code42: client,
        xsoar,
        registry: metrics.registry,
        ...(this.opts.clock ? { clock: this.opts.clock } : {}),
      });
    }
    const poller = new Poller({
      client,
      redis: state,
      queue,
      keys: this.keys,
      severities: config.code42.severities,
      states: config.code42.states,
      firstFetchMs: config.poll.firstFetch,
      lookbackMs: config.poll.lookback,
      logger: logger.child({ component: 'poller' }),
      events: pollerEvents,
      lockTtlMs: config.worker.lockDuration,
      ...(this.opts.clock ? { clock: this.opts.clock } : {}),
      code42Clock,
      deepLookbackMs: config.poll.deepLookback,
      sweepIntervalMs: config.poll.sweepInterval,
      probeIntervalMs: config.poll.countProbeInterval,
      ...(this.sync ? { changeSink: this.sync.sink } : {}),
      pollIntervalMs: config.poll.interval,
      // Half of what the budget allows in one interval: a poll fits its interval with room for forwarding.
      maxSweepPagesPerPoll: Math.max(1, Math.min(50, Math.floor((config.code42.rateLimit * config.poll.interval) / 60_000 / 2))),
      // Forwarding comes first: with a backlog the sweeps wait (unless a cycle is overdue).
      shouldYield: async () => (await queue.getWaitingCount()) >= 2 * config.worker.concurrency,
    });
    // Redis losing its data (no AOF, an empty replica, a flush) is noticed by a marker key; then older sessions
    // are searched in XSOAR before any create, and the poll schedule is created again.
    this.stateMarker = new StateMarker({
      redis: state,
      keys: this.keys,
      logger: logger.child({ component: 'state' }),
      checkIntervalMs: Math.max(250, Math.min(config.poll.interval, 5_000)),
      doubtTtlMs: Math.min(
        7 * 24 * 3_600_000,
        config.poll.firstFetch + config.poll.lookback + config.xsoar.searchSettle + config.worker.backoff * (2 ** Math.min(config.worker.attempts, 20) - 1),
      ),
      xsoarHoldsAny: () => xsoar.holdsAnyForwardedIncident(),
      onLoss: async () => this.scheduler?.ensureSchedule(),
      onLossCounted: () => metrics.redisStateLost(),
      ...(this.opts.clock ? { clock: this.opts.clock } : {}),
    });
    const breaker = this.createBreaker(queue, xsoar, createIncydrClient(config, { budget, observer: metrics.observer, retryLimit: 0 }));
    this.breaker = breaker;
    status.onOk((upstream) => breaker.recordSuccess(upstream));
    this.memoryGuard = new RedisMemoryGuard({
      redis: state,
      probeKey: `${config.redis.prefix}:memory-probe`,
      probeIntervalMs: config.upstream.probeInterval,
      probeMaxMs: config.upstream.probeMax,
      pause: async () => this.worker?.pauseLocal(),
      resume: async () => this.worker?.resumeLocal(),
      events: {
        onFull: (full, memory) =>
          logger.error(
            { reason: full.reason, redisMemory: memory },
            'Redis refuses writes (maxmemory reached): forwarding waits without spending attempts and resumes when Redis accepts writes; raise maxmemory',
          ),
        onRecovered: (downMs, memory) => logger.info({ downMs, redisMemory: memory }, 'Redis accepts writes again; resuming'),
      },
    });
    this.worker = new ForwardWorker({
      connection: this.connect('c42x-worker'),
      prefix: config.redis.prefix,
      concurrency: config.worker.concurrency,
      queue,
      ledger,
      enricher: new SessionEnricher({ client, includeFiles: config.enrich.includeFiles, cacheTtlMs: config.enrich.cacheTtl }),
      xsoar,
      mapping: mappingOptions(config),
      status,
      breaker,
      memory: this.memoryGuard,
      searchSettleMs: config.xsoar.searchSettle,
      stateLoss: this.stateMarker,
      lockDurationMs: config.worker.lockDuration,
      shuttingDown: () => this.stopping,
      logger: logger.child({ component: 'worker' }),
      events: metrics.workerEvents,
      ...(this.opts.clock ? { clock: this.opts.clock } : {}),
    });
    if (this.stopping) return;
    await this.stateMarker.start();
    this.worker.start();
    await this.sync?.start();
    this.scheduler = new PollScheduler({
      connection: this.connect('c42x-poll'),
      prefix: config.redis.prefix,
      intervalMs: config.poll.interval,
      poller,
      lockDurationMs: config.worker.lockDuration,
      logger: logger.child({ component: 'scheduler' }),
      onError: (err) => {
        if (isRedisOomError(err)) void this.memoryGuard?.refused(err.message);
      },
    });
    await this.scheduler.start();
    logger.info({ pollIntervalMs: config.poll.interval, concurrency: config.worker.concurrency }, 'started');
  }

  /**
   * One circuit per upstream: an outage pauses the queue (BullMQ's queue rate limit, shared by every
   * replica, spends no attempt) and a probe that needs no session decides when it is over.
   */
  private createBreaker(queue: Queue, xsoar: XsoarClient, code42: IncydrClient): CircuitBreaker {
    const { config, logger } = this.opts;
    const name = (u: Upstream): string => (u === 'xsoar' ? 'XSOAR' : 'Code42');
    return new CircuitBreaker({
      // At least 2 and below the attempts: a session that alone keeps failing spends threshold - 1
      // attempts per opening (the probe finds the upstream up), so it still reaches the failed set.
      threshold: Math.max(2, Math.min(config.upstream.failureThreshold, config.worker.attempts - 1)),
      probeIntervalMs: config.upstream.probeInterval,
      probeMaxMs: config.upstream.probeMax,
      probes: {
        // A search and an events read of a session that does not exist: any answer means "up".
        xsoar: async () => void (await xsoar.findIncidentsForSession(PROBE_SESSION_ID, config.xsoar.incidentType)),
        code42: async () => void (await code42.getSessionEvents(PROBE_SESSION_ID)),
      },
      pause: async (ms) => void (await queue.rateLimit(Math.max(1, Math.ceil(ms)))),
      resume: async () => void (await queue.removeRateLimitKey()),
      events: {
        onOpen: (u, c) => {
          this.metrics.upstreamOutage(u);
          logger.error(
            { upstream: u, reason: c.reason, nextProbeInMs: c.nextProbeAt - c.since },
            `${name(u)} is down (${c.reason}): the forward queue waits without spending attempts and probes ${name(u)} until it answers`,
          );
        },
        onProbeFailed: (u, c) => logger.debug({ upstream: u, reason: c.reason, failedProbes: c.failedProbes }, `${name(u)} still down`),
        onClose: (u, downMs) => logger.info({ upstream: u, downMs }, `${name(u)} answers again after ${Math.round(downMs / 100) / 10} s; the forward queue resumes`),
      },
    });
  }

  /** Where change records of forwarded sessions go (the incident updater's queue); none when the sync is off. */
  get changeSink(): SessionChangeSink | undefined {
    return this.sync?.sink;
  }

  private metricsSources(queue: Queue, pollState: PollState, ledger: Ledger, health: Redis): void {
    this.metrics.setSources({
      queueDepth: async () => {
        const c = await queue.getJobCounts('waiting', 'active', 'delayed', 'failed', 'prioritized');
        return { waiting: (c.waiting ?? 0) + (c.prioritized ?? 0), active: c.active ?? 0, delayed: c.delayed ?? 0, failed: c.failed ?? 0 };
      },
      checkpoint: () => pollState.getCheckpoint(),
      incidentIdUnknown: () => ledger.acceptedCount(),
      upstreamOutages: () => this.breaker?.openCircuits() ?? new Map(),
      redisMemory: () => readRedisMemory(health),
      redisFullSince: () => this.memoryGuard?.state()?.since,
    });
  }

  async readiness(): Promise<ReadinessReport> {
    if (!this.readinessProbe) return { ready: false, checks: { start: { ok: false, detail: 'starting' } } };
    return this.readinessProbe.check();
  }

  /** BullMQ needs `noeviction`: any other policy can silently delete queued alerts. */
  private async warnOnEvictionPolicy(redis: Redis): Promise<void> {
    try {
      const reply = (await redis.config('GET', 'maxmemory-policy')) as unknown as string[];
      const policy = reply[1];
      if (policy && policy !== 'noeviction') {
        this.opts.logger.warn({ maxmemoryPolicy: policy }, 'Redis maxmemory-policy is not noeviction: Redis may evict queued alerts under memory pressure; set maxmemory-policy noeviction');
      }
    } catch (err) {
      this.opts.logger.debug({ err }, 'could not read Redis maxmemory-policy (CONFIG GET not allowed?)');
    }
  }

  /** The forward queue is paused (BullMQ's queue rate limit is set); false when Redis does not tell within 1 s. */
  private async queuePaused(): Promise<boolean> {
    if (!this.forwardQueue) return false;
    // With a count: the worker's own limiter key lives for up to a second in normal work too.
    const ttl = await withTimeout(this.forwardQueue.getRateLimitTtl(LIMITER_MAX), 1_000, 'reading the queue pause').catch(() => 0);
    return ttl > 0;
  }

  /**
   * Graceful stop within `deadlineMs`: readiness goes false, polling stops, running jobs finish or
   * are handed back to the queue, then queues and connections close.
   */
  async stop(deadlineMs = 25_000): Promise<void> {
    const { logger } = this.opts;
    this.stopping = true;
    this.stateMarker?.stop();
    this.breaker?.stop();
    this.memoryGuard?.stop();
    const deadline = Date.now() + deadlineMs;
    const left = (): number => deadline - Date.now();

    if (this.scheduler && (await within(this.scheduler.stop(), left() / 3)) === 'timeout') {
      logger.warn('a poll was still running at shutdown; it is abandoned (the checkpoint did not move, the next poll repeats it)');
      await within(this.scheduler.stop(true), 1_000);
    }
    // While the queue is paused (refused credentials, an upstream down, a 429) no job is fetched and the
    // paused ones are already back in the queue; BullMQ's worker may still sleep out the pause, so do
    // not wait for it: hand back whatever still runs and close at once.
    const paused = await this.queuePaused();
    logger.debug({ paused }, 'shutdown: polling stopped; closing the forward worker');
    if (this.worker && paused) {
      await this.worker.closeNow('shutdown', Math.max(500, Math.min(2_000, left() - 3_000)));
    } else if (this.worker && (await within(this.worker.close(), left() - 3_000)) === 'timeout') {
      logger.warn('forward jobs still running at the deadline; handing them back to the queue');
      this.worker.cancelAll('shutdown');
      await within(this.worker.close(true), Math.max(500, left() - 1_500));
    }
    if (this.sync && (await within(this.sync.stop(), Math.max(500, left() - 2_000))) === 'timeout') {
      logger.warn('incident updates still running at the deadline; handing them back to the queue');
      await within(this.sync.stop(true), 1_000);
    }
    logger.debug('shutdown: forward worker closed; closing the queue and connections');
    if (this.forwardQueue) await within(this.forwardQueue.close(), Math.max(200, left() - 1_000));
    await within(Promise.all(this.connections.map((c) => closeRedis(c))), Math.max(200, left()));
    for (const c of this.connections) if (c.status !== 'end') c.disconnect();
    logger.info('stopped');
  }
}
