import type { Queue } from 'bullmq';
import type { Redis } from 'ioredis';
import { Code42Clock } from '../../src/code42/code42-clock.js';
import { IncydrClient } from '../../src/code42/incydr-client.js';
import { RequestBudget } from '../../src/code42/request-budget.js';
import type { SessionState, SeverityWord } from '../../src/code42/vocabulary.js';
import type { Logger } from '../../src/infra/logger.js';
import { forwardJobId, stateKeys } from '../../src/store/keys.js';
import { Poller, type PollerOptions } from '../../src/poll/poller.js';
import { createForwardQueue } from '../../src/jobs/queues.js';
import type { Code42Simulator } from '../sims/code42/index.js';
import { silentLogger } from './logs.js';
import { testRedis } from './redis.js';

export interface PollerHarnessOptions {
  sim: Code42Simulator;
  prefix: string;
  severities?: SeverityWord[];
  states?: SessionState[];
  firstFetchMs?: number;
  lookbackMs?: number;
  clock?: () => number;
  logger?: Logger;
  perMinute?: number;
  /** Anything else the poller takes (sweep intervals, change sink, yield test ...). */
  poller?: Partial<PollerOptions>;
}

/**
 * One "process" worth of poller: its own Redis connections, client, queue and poller. Closing it and
 * building another on the same prefix is a restart as far as Redis is concerned.
 */
export class PollerHarness {
  readonly redis: Redis;
  readonly queue: Queue;
  readonly client: IncydrClient;
  readonly poller: Poller;

  constructor(opts: PollerHarnessOptions) {
    this.redis = testRedis();
    this.queue = createForwardQueue(testRedis(), opts.prefix, { attempts: 3, backoffMs: 100, keepCompletedMs: 60_000 });
    const code42Clock = new Code42Clock(opts.clock ? { local: opts.clock } : {});
    const budget = new RequestBudget({ redis: this.redis, prefix: opts.prefix, perMinute: opts.perMinute ?? 60_000 });
    this.client = new IncydrClient({
      apiUrl: opts.sim.url,
      clientId: 'key-sim-client',
      clientSecret: 'sim-client-secret',
      timeoutMs: 10_000,
      budget,
      backoffLimitMs: 200,
      serverClock: code42Clock,
      ...(opts.clock ? { clock: opts.clock } : {}),
    });
    this.poller = new Poller({
      client: this.client,
      redis: this.redis,
      queue: this.queue,
      keys: stateKeys(opts.prefix),
      severities: opts.severities ?? ['critical', 'high', 'moderate', 'low'],
      states: opts.states ?? ['OPEN', 'OPEN_NEW_DATA'],
      firstFetchMs: opts.firstFetchMs ?? 86_400_000,
      lookbackMs: opts.lookbackMs ?? 7_200_000,
      logger: opts.logger ?? silentLogger(),
      ...(opts.clock ? { clock: opts.clock } : {}),
      code42Clock,
      ...opts.poller,
    });
  }

  /** Ids of every job in the forward queue, whatever its state. */
  async jobIds(): Promise<string[]> {
    const jobs = await this.queue.getJobs(['waiting', 'active', 'delayed', 'completed', 'failed', 'prioritized', 'waiting-children']);
    return jobs.map((j) => j.id as string);
  }

  async hasJobFor(sessionId: string): Promise<boolean> {
    return (await this.queue.getJob(forwardJobId(sessionId))) !== undefined;
  }

  async close(): Promise<void> {
    const connection = (this.queue.opts as { connection: Redis }).connection;
    await this.queue.close();
    connection.disconnect();
    this.redis.disconnect();
  }
}
