import type { Queue } from 'bullmq';
import type { Redis } from 'ioredis';
import { Code42AuthError } from './code42/errors.js';
import { RequestBudget } from './code42/request-budget.js';
import { describeConfig, type Config } from './config/load-config.js';
import type { Logger } from './infra/logger.js';
import { closeRedis, createRedis } from './infra/redis.js';
import { ForwarderMetrics } from './ops/metrics.js';
import { Readiness, type ReadinessReport } from './ops/readiness.js';
import { ForwardWorker } from './pipeline/forward-worker.js';
import { stateKeys, type StateKeys } from './pipeline/keys.js';
import { Ledger } from './pipeline/ledger.js';
import { PollScheduler } from './pipeline/poll-scheduler.js';
import { PollState } from './pipeline/poll-state.js';
import { Poller, type PollerEvents } from './pipeline/poller.js';
import { createForwardQueue, forwardJobPolicy } from './pipeline/queues.js';
import { SessionEnricher } from './pipeline/session-enricher.js';
import { UpstreamStatus } from './pipeline/upstream-status.js';
import { createIncydrClient, createXsoarClient } from './upstreams.js';
import type { SessionChangeSink } from './pipeline/session-change.js';
import { SyncService } from './sync/sync-service.js';

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
  private forwardQueue: Queue | undefined;
  private worker: ForwardWorker | undefined;
  private readinessProbe: Readiness | undefined;
  private stopping = false;
  private sync: SyncService | undefined;

  constructor(private readonly opts: DaemonOptions) {
    this.keys = stateKeys(opts.config.redis.prefix);
    this.metrics = opts.metrics ?? new ForwarderMetrics({}, { defaultMetrics: false });
  }

  private connect(name: string, role: 'worker' | 'command' = 'worker'): Redis {
    const redis = createRedis({ url: this.opts.config.redis.url, name, role });
    redis.on('error', (err) => this.opts.logger.debug({ err, connection: name }, 'redis connection error'));
    this.connections.push(redis);
    return redis;
  }

  /** The first connection reports outages once, not once per reconnect attempt. */
  private watchRedis(redis: Redis): void {
    let down = false;
    redis.on('close', () => {
      if (down || this.stopping) return;
      down = true;
      this.opts.logger.warn('Redis is unreachable; waiting for it (nothing is lost, work resumes when it is back)');
    });
    redis.on('ready', () => {
      if (!down) return;
      down = false;
      this.opts.logger.info('Redis is reachable again; resuming');
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
    this.readinessProbe = new Readiness({
      redis: this.connect('c42x-health', 'command'),
      pollState,
      pollLockKey: this.keys.pollLock,
      status: this.status,
      pollIntervalMs: config.poll.interval,
      startedAt: this.startedAt,
      shuttingDown: () => this.stopping,
      ...(this.opts.clock ? { clock: this.opts.clock } : {}),
    });

    const budget = new RequestBudget({
      redis: state,
      prefix: config.redis.prefix,
      perMinute: config.code42.rateLimit,
      onWait: (ms) => metrics.rateLimitWait('code42', ms),
    });
    const client = createIncydrClient(config, {
      budget,
      observer: metrics.observer,
      ...(this.opts.clock ? { clock: this.opts.clock } : {}),
    });
    if (config.xsoar.tlsInsecure) logger.warn('XSOAR_TLS_INSECURE is on: the XSOAR certificate is not verified');
    const xsoar = createXsoarClient(config, { observer: metrics.observer });

    // Blocks until Redis answers: a daemon started before Redis waits instead of crash-looping.
    await this.warnOnEvictionPolicy(state);

    this.forwardQueue = createForwardQueue(queueConnection, config.redis.prefix, forwardJobPolicy(config));
    this.forwardQueue.on('error', (err) => logger.debug({ err }, 'forward queue error'));
    const queue = this.forwardQueue;
    this.metricsSources(queue, pollState);

    const status = this.status;
    const pollerEvents: PollerEvents = {
      ...metrics.pollerEvents,
      onPoll: (outcome, durationMs, error) => {
        metrics.pollerEvents.onPoll?.(outcome, durationMs, error);
        if (outcome === 'ok') status.markOk('code42');
        if (error instanceof Code42AuthError) status.markAuthFailure('code42', error.message);
      },
    };
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
    });
    this.worker = new ForwardWorker({
      connection: this.connect('c42x-worker'),
      prefix: config.redis.prefix,
      concurrency: config.worker.concurrency,
      queue,
      ledger: new Ledger(state, this.keys),
      enricher: new SessionEnricher({ client, includeFiles: config.enrich.includeFiles, cacheTtlMs: config.enrich.cacheTtl }),
      xsoar,
      mapping: {
        incidentType: config.xsoar.incidentType,
        consoleUrl: config.code42.consoleUrl,
        createInvestigation: config.xsoar.createInvestigation,
        playbookId: config.xsoar.playbookId,
        includeFiles: config.enrich.includeFiles,
        maxFileEvents: config.enrich.maxFileEvents,
      },
      status,
      searchSettleMs: config.xsoar.searchSettle,
      lockDurationMs: config.worker.lockDuration,
      shuttingDown: () => this.stopping,
      logger: logger.child({ component: 'worker' }),
      events: metrics.workerEvents,
      ...(this.opts.clock ? { clock: this.opts.clock } : {}),
    });
    if (config.sync.trackUpdates || config.sync.stateSync !== 'off') {
      this.sync = new SyncService({
        config,
        logger,
        connect: (name) => this.connect(name),
        redis: state,
        ledger: new Ledger(state, this.keys),
        code42: client,
        xsoar,
        registry: metrics.registry,
        ...(this.opts.clock ? { clock: this.opts.clock } : {}),
      });
    }
    if (this.stopping) return;
    this.worker.start();
    await this.sync?.start();
    this.scheduler = new PollScheduler({
      connection: this.connect('c42x-poll'),
      prefix: config.redis.prefix,
      intervalMs: config.poll.interval,
      poller,
      lockDurationMs: config.worker.lockDuration,
      logger: logger.child({ component: 'scheduler' }),
    });
    await this.scheduler.start();
    logger.info({ pollIntervalMs: config.poll.interval, concurrency: config.worker.concurrency }, 'started');
  }

  /** Where change records of forwarded sessions go (the incident updater's queue); none when the sync is off. */
  get changeSink(): SessionChangeSink | undefined {
    return this.sync?.sink;
  }

  private metricsSources(queue: Queue, pollState: PollState): void {
    this.metrics.setSources({
      queueDepth: async () => {
        const c = await queue.getJobCounts('waiting', 'active', 'delayed', 'failed', 'prioritized');
        return { waiting: (c.waiting ?? 0) + (c.prioritized ?? 0), active: c.active ?? 0, delayed: c.delayed ?? 0, failed: c.failed ?? 0 };
      },
      checkpoint: () => pollState.getCheckpoint(),
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

  /**
   * Graceful stop within `deadlineMs`: readiness goes false, polling stops, running jobs finish or
   * are handed back to the queue, then queues and connections close.
   */
  async stop(deadlineMs = 25_000): Promise<void> {
    const { logger } = this.opts;
    this.stopping = true;
    const deadline = Date.now() + deadlineMs;
    const left = (): number => deadline - Date.now();

    if (this.scheduler && (await within(this.scheduler.stop(), left() / 3)) === 'timeout') {
      logger.warn('a poll was still running at shutdown; it is abandoned (the checkpoint did not move, the next poll repeats it)');
      await within(this.scheduler.stop(true), 1_000);
    }
    if (this.worker && (await within(this.worker.close(), left() - 3_000)) === 'timeout') {
      logger.warn('forward jobs still running at the deadline; handing them back to the queue');
      this.worker.cancelAll('shutdown');
      await within(this.worker.close(true), Math.max(500, left() - 1_500));
    }
    if (this.sync && (await within(this.sync.stop(), Math.max(500, left() - 2_000))) === 'timeout') {
      logger.warn('incident updates still running at the deadline; handing them back to the queue');
      await within(this.sync.stop(true), 1_000);
    }
    if (this.forwardQueue) await within(this.forwardQueue.close(), Math.max(200, left() - 1_000));
    await within(Promise.all(this.connections.map((c) => closeRedis(c))), Math.max(200, left()));
    for (const c of this.connections) if (c.status !== 'end') c.disconnect();
    logger.info('stopped');
  }
}
