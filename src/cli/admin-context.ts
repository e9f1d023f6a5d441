import { Queue } from 'bullmq';
import type { RedisConnection } from '../infra/redis.js';
import type { Config } from '../config/load-config.js';
import { closeRedis, createRedis } from '../infra/redis.js';
import { withTimeout } from '../infra/timeout.js';
import { UPDATE_QUEUE, stateKeys, type StateKeys, type WorkQueueName } from '../store/keys.js';
import { Ledger } from '../forward/ledger.js';
import { createForwardQueue, forwardJobPolicy } from '../jobs/queues.js';
import { RejectedLog } from '../poll/rejected-log.js';

/** What the operator commands work on: the deployment's work queues, ledger and rejected-input log. */
export interface AdminContext {
  redis: RedisConnection;
  keys: StateKeys;
  /** The forward queue. */
  queue: Queue;
  /** Every work queue by name. */
  queues: Record<WorkQueueName, Queue>;
  ledger: Ledger;
  rejected: RejectedLog;
  close(): Promise<void>;
}

export async function openAdminContext(config: Config): Promise<AdminContext> {
  const redis = createRedis({ url: config.redis.url, password: config.redis.password, name: 'c42x-cli', role: 'command' });
  const queueConnection = createRedis({ url: config.redis.url, password: config.redis.password, name: 'c42x-cli-queue', role: 'command' });
  for (const r of [redis, queueConnection]) r.on('error', () => undefined);
  try {
    await withTimeout(redis.ping(), 10_000, 'Redis does not answer within 10 s');
  } catch (err) {
    redis.disconnect();
    queueConnection.disconnect();
    throw err;
  }
  const keys = stateKeys(config.redis.prefix);
  const queue = createForwardQueue(queueConnection, config.redis.prefix, forwardJobPolicy(config));
  const update = new Queue(UPDATE_QUEUE, { connection: queueConnection, prefix: config.redis.prefix });
  for (const q of [queue, update]) q.on('error', () => undefined);
  return {
    redis,
    keys,
    queue,
    queues: { forward: queue, update },
    ledger: new Ledger(redis, keys),
    rejected: new RejectedLog(redis, keys),
    async close() {
      await Promise.all([queue.close(), update.close()]);
      await Promise.all([closeRedis(redis), closeRedis(queueConnection)]);
    },
  };
}
