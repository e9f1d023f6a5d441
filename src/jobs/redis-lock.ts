import { randomUUID } from 'node:crypto';
import type { RedisConnection } from '../infra/redis.js';

const RENEW = `if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('PEXPIRE', KEYS[1], ARGV[2]) end return 0`;
const RELEASE = `if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('DEL', KEYS[1]) end return 0`;

/**
 * A short-lived Redis lock renewed while held, so a crashed holder blocks others for one TTL at most.
 */
export class RedisLock {
  private token: string | undefined;
  private timer: NodeJS.Timeout | undefined;

  constructor(
    private readonly redis: RedisConnection,
    private readonly key: string,
    private readonly ttlMs = 30_000,
  ) {}

  async acquire(): Promise<boolean> {
    const token = randomUUID();
    const ok = await this.redis.set(this.key, token, 'PX', this.ttlMs, 'NX');
    if (ok !== 'OK') return false;
    this.token = token;
    this.timer = setInterval(() => {
      this.redis.eval(RENEW, 1, this.key, token, String(this.ttlMs)).catch(() => undefined);
    }, Math.max(1_000, Math.floor(this.ttlMs / 3)));
    this.timer.unref();
    return true;
  }

  async release(): Promise<void> {
    if (this.timer) clearInterval(this.timer);
    this.timer = undefined;
    const token = this.token;
    this.token = undefined;
    if (token) await this.redis.eval(RELEASE, 1, this.key, token).catch(() => undefined);
  }
}
