import type { Redis } from 'ioredis';
import type { Queue } from 'bullmq';
import { IncydrClient } from './code42/incydr-client.js';
import { RequestBudget } from './code42/request-budget.js';
import { describeConfig, type Config } from './config/load-config.js';
import type { Logger } from './infra/logger.js';
import { closeRedis, createRedis } from './infra/redis.js';
import type { RequestObserver } from './infra/request-observer.js';
import { stateKeys, type StateKeys } from './pipeline/keys.js';
import { PollScheduler } from './pipeline/poll-scheduler.js';
import { Poller, type PollerEvents } from './pipeline/poller.js';
import { createForwardQueue } from './pipeline/queues.js';
import { ForwardWorker, type ForwardWorkerEvents } from './pipeline/forward-worker.js';
import { Ledger } from './pipeline/ledger.js';
import { SessionEnricher } from './pipeline/session-enricher.js';
import { UpstreamStatus } from './pipeline/upstream-status.js';
import { XsoarClient } from './xsoar/xsoar-client.js';

export interface DaemonOptions {
  config: Config;
  logger: Logger;
  observer?: RequestObserver;
  pollerEvents?: PollerEvents;
  workerEvents?: ForwardWorkerEvents;
  clock?: () => number;
}

/**
 * The running forwarder: Redis connections, the Code42 client, the forward queue, the poll scheduler
 * and the forward workers, started and stopped in order.
 */
export class Daemon {
  readonly keys: StateKeys;
  private readonly connections: Redis[] = [];
  private scheduler: PollScheduler | undefined;
  private forwardQueue: Queue | undefined;
  private worker: ForwardWorker | undefined;
  readonly status = new UpstreamStatus();
  client: IncydrClient | undefined;
  xsoar: XsoarClient | undefined;
  poller: Poller | undefined;

  constructor(private readonly opts: DaemonOptions) {
    this.keys = stateKeys(opts.config.redis.prefix);
  }

  private connect(name: string): Redis {
    const redis = createRedis({ url: this.opts.config.redis.url, name });
    redis.on('error', (err) => this.opts.logger.debug({ err, connection: name }, 'redis connection error'));
    this.connections.push(redis);
    return redis;
  }

  async start(): Promise<void> {
    const { config, logger } = this.opts;
    logger.info({ config: describeConfig(config) }, 'starting');
    const state = this.connect('c42x-state');
    const queueConnection = this.connect('c42x-queue');
    await this.warnOnEvictionPolicy(state);

    const budget = new RequestBudget({ redis: state, prefix: config.redis.prefix, perMinute: config.code42.rateLimit });
    this.client = new IncydrClient({
      apiUrl: config.code42.apiUrl,
      clientId: config.code42.clientId,
      clientSecret: config.code42.clientSecret,
      timeoutMs: config.code42.timeout,
      caFile: config.code42.caFile,
      proxy: config.proxy.https,
      noProxy: config.proxy.noProxy,
      budget,
      ...(this.opts.observer ? { observer: this.opts.observer } : {}),
      ...(this.opts.clock ? { clock: this.opts.clock } : {}),
    });
    this.forwardQueue = createForwardQueue(queueConnection, config.redis.prefix, {
      attempts: config.worker.attempts,
      backoffMs: config.worker.backoff,
      keepCompletedMs: config.worker.keepCompleted,
    });
    this.forwardQueue.on('error', (err) => logger.error({ err }, 'forward queue error'));
    this.poller = new Poller({
      client: this.client,
      redis: state,
      queue: this.forwardQueue,
      keys: this.keys,
      severities: config.code42.severities,
      states: config.code42.states,
      firstFetchMs: config.poll.firstFetch,
      lookbackMs: config.poll.lookback,
      logger: logger.child({ component: 'poller' }),
      ...(this.opts.pollerEvents ? { events: this.opts.pollerEvents } : {}),
      ...(this.opts.clock ? { clock: this.opts.clock } : {}),
    });
    if (config.xsoar.tlsInsecure) {
      logger.warn('XSOAR_TLS_INSECURE is on: the XSOAR certificate is not verified');
    }
    this.xsoar = new XsoarClient({
      url: config.xsoar.url,
      apiKey: config.xsoar.apiKey,
      apiKeyId: config.xsoar.apiKeyId,
      authType: config.xsoar.authType,
      timeoutMs: config.xsoar.timeout,
      caFile: config.xsoar.caFile,
      insecure: config.xsoar.tlsInsecure,
      proxy: config.proxy.https,
      noProxy: config.proxy.noProxy,
      ...(this.opts.observer ? { observer: this.opts.observer } : {}),
    });
    this.worker = new ForwardWorker({
      connection: this.connect('c42x-worker'),
      prefix: config.redis.prefix,
      concurrency: config.worker.concurrency,
      queue: this.forwardQueue,
      ledger: new Ledger(state, this.keys),
      enricher: new SessionEnricher({ client: this.client, includeFiles: config.enrich.includeFiles, cacheTtlMs: config.enrich.cacheTtl }),
      xsoar: this.xsoar,
      mapping: {
        incidentType: config.xsoar.incidentType,
        consoleUrl: config.code42.consoleUrl,
        createInvestigation: config.xsoar.createInvestigation,
        playbookId: config.xsoar.playbookId,
        includeFiles: config.enrich.includeFiles,
        maxFileEvents: config.enrich.maxFileEvents,
      },
      status: this.status,
      searchSettleMs: config.xsoar.searchSettle,
      logger: logger.child({ component: 'worker' }),
      ...(this.opts.workerEvents ? { events: this.opts.workerEvents } : {}),
      ...(this.opts.clock ? { clock: this.opts.clock } : {}),
    });
    this.worker.start();
    this.scheduler = new PollScheduler({
      connection: this.connect('c42x-poll'),
      prefix: config.redis.prefix,
      intervalMs: config.poll.interval,
      poller: this.poller,
      logger: logger.child({ component: 'scheduler' }),
    });
    await this.scheduler.start();
    logger.info({ intervalMs: config.poll.interval }, 'started');
  }

  /** BullMQ needs `noeviction`: any other policy can silently delete queued jobs. */
  private async warnOnEvictionPolicy(redis: Redis): Promise<void> {
    try {
      const reply = (await redis.config('GET', 'maxmemory-policy')) as unknown as string[];
      const policy = reply[1];
      if (policy && policy !== 'noeviction') {
        this.opts.logger.warn({ maxmemoryPolicy: policy }, 'Redis maxmemory-policy is not noeviction: Redis may evict queued alerts under memory pressure');
      }
    } catch (err) {
      this.opts.logger.debug({ err }, 'could not read Redis maxmemory-policy (CONFIG GET not allowed?)');
    }
  }

  async stop(): Promise<void> {
    await this.scheduler?.stop();
    await this.worker?.close();
    await this.forwardQueue?.close();
    await Promise.all(this.connections.map((c) => closeRedis(c)));
    this.opts.logger.info('stopped');
  }
}
