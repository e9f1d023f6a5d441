/** The Redis URL forms: redis://, rediss:// (TLS) and redis+sentinel:// (Sentinel), and REDIS_PASSWORD. */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { describeConfig, loadConfig } from '../../src/config/load-config.js';
import { isRedisUrl, maskRedisUrl, sentinelOptions } from '../../src/infra/redis.js';

const REQUIRED = {
  CODE42_API_URL: 'https://api.us.code42.com',
  CODE42_CLIENT_ID: 'key-1',
  CODE42_CLIENT_SECRET: 'secret-1',
  XSOAR_URL: 'https://xsoar.example.com',
  XSOAR_API_KEY: 'xsoar-key-1',
};

describe('Redis URL forms', () => {
  it('accepts redis://, rediss:// and redis+sentinel:// and refuses anything else', () => {
    for (const url of ['redis://127.0.0.1:6379', 'rediss://:pw@redis.example.com:6380/2', 'redis+sentinel://s1:26379,s2:26379/mymaster', 'rediss+sentinel://:pw@s1,s2:26380/mymaster/1?sentinelPassword=sp']) {
      assert.ok(isRedisUrl(url), url);
      assert.equal(loadConfig({ env: { ...REQUIRED, REDIS_URL: url } }).redis.url, url);
    }
    for (const url of ['http://redis:6379', 'redis+sentinel://s1:26379', 'memcached://x']) {
      assert.ok(!isRedisUrl(url), url);
      assert.throws(() => loadConfig({ env: { ...REQUIRED, REDIS_URL: url } }), /REDIS_URL.*redis\+sentinel/);
    }
  });

  it('turns a Sentinel URL into ioredis sentinel options', () => {
    assert.equal(sentinelOptions('redis://127.0.0.1:6379'), undefined);
    assert.deepEqual(sentinelOptions('rediss+sentinel://:p%40ss@s1:26379,s2/mymaster/3?sentinelPassword=sp'), {
      sentinels: [{ host: 's1', port: 26379 }, { host: 's2', port: 26379 }],
      name: 'mymaster',
      password: 'p@ss',
      db: 3,
      sentinelPassword: 'sp',
      tls: {},
    });
  });

  it('masks passwords in every form, and REDIS_PASSWORD in the logged configuration', () => {
    assert.equal(maskRedisUrl('rediss://:topsecret@redis:6380'), 'rediss://:***@redis:6380');
    const masked = maskRedisUrl('redis+sentinel://:topsecret@s1:26379,s2:26379/mymaster?sentinelPassword=alsosecret');
    assert.ok(!masked.includes('topsecret') && !masked.includes('alsosecret'), masked);
    assert.match(masked, /s1:26379,s2:26379\/mymaster/);
    const config = loadConfig({ env: { ...REQUIRED, REDIS_PASSWORD: 'pw-from-secret' } });
    assert.equal(config.redis.password, 'pw-from-secret');
    assert.ok(!JSON.stringify(describeConfig(config)).includes('pw-from-secret'));
  });
});
