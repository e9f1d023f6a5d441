/** Redis Cluster: the redis+cluster:// URL form, the hash-tagged prefix, and every script's keys in one slot. */
import assert from 'node:assert/strict';
import { readdirSync, readFileSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { describe, it } from 'node:test';
import { describeConfig, loadConfig } from '../../src/config/load-config.js';
import { clusterNodes, effectivePrefix, hashTag } from '../../src/infra/redis-cluster.js';
import { isRedisUrl, maskRedisUrl } from '../../src/infra/redis.js';
import { stateKeys } from '../../src/store/keys.js';
import { VALID } from '../helpers/config-env.js';


function sources(dir: string): string[] {
  return readdirSync(dir).flatMap((name) => {
    const path = join(dir, name);
    return statSync(path).isDirectory() ? sources(path) : path.endsWith('.ts') ? [path] : [];
  });
}

describe('Redis Cluster URL form', () => {
  it('accepts redis+cluster:// and rediss+cluster:// with one or more nodes', () => {
    for (const url of ['redis+cluster://h1:7000,h2:7001,h3:7002', 'rediss+cluster://user:pw@cfg.cache.amazonaws.com:6379', 'redis+cluster://h1:7000/']) {
      assert.ok(isRedisUrl(url), url);
      assert.equal(loadConfig({ env: { ...VALID, REDIS_URL: url } }).redis.url, url);
    }
    for (const url of ['redis+cluster://', 'redis+cluster://h1:7000/2', 'redis+cluster://h1:7000?x=1']) assert.ok(!isRedisUrl(url), url);
    assert.throws(() => loadConfig({ env: { ...VALID, REDIS_URL: 'redis+cluster://' } }), /REDIS_URL.*redis\+cluster/);
  });

  it('turns a cluster URL into seed nodes and per-node options', () => {
    assert.equal(clusterNodes('redis://127.0.0.1:6379'), undefined);
    assert.deepEqual(clusterNodes('rediss+cluster://default:p%40ss@h1:7000,h2'), {
      nodes: [{ host: 'h1', port: 7000 }, { host: 'h2', port: 6379 }],
      redisOptions: { username: 'default', password: 'p@ss', tls: {} },
    });
  });

  it('masks the password of a cluster URL', () => {
    assert.equal(maskRedisUrl('redis+cluster://default:topsecret@h1:7000,h2:7001'), 'redis+cluster://default:***@h1:7000,h2:7001');
    const logged = JSON.stringify(describeConfig(loadConfig({ env: { ...VALID, REDIS_URL: 'rediss+cluster://:topsecret@h1:7000' } })));
    assert.doesNotMatch(logged, /topsecret/);
  });
});

describe('Redis Cluster prefix', () => {
  it('wraps a prefix without a hash tag in braces on a cluster, and leaves every other form as it was', () => {
    const prefixOf = (env: Record<string, string>): string => loadConfig({ env: { ...VALID, ...env } }).redis.prefix;
    assert.equal(prefixOf({ REDIS_URL: 'redis+cluster://h1:7000' }), '{c42x}');
    assert.equal(prefixOf({ REDIS_URL: 'redis+cluster://h1:7000', QUEUE_PREFIX: 'prod-a' }), '{prod-a}');
    assert.equal(prefixOf({ REDIS_URL: 'redis+cluster://h1:7000', QUEUE_PREFIX: 'c42x:{prod}' }), 'c42x:{prod}');
    assert.equal(prefixOf({}), 'c42x');
    assert.equal(prefixOf({ REDIS_URL: 'redis+sentinel://s1:26379/mymaster', QUEUE_PREFIX: 'prod-a' }), 'prod-a');
    // An empty tag is no tag (Redis hashes the whole key then).
    assert.equal(effectivePrefix('a{}b', 'redis+cluster://h1:7000'), '{a{}b}');
    assert.equal(hashTag('{a{}b}'), 'a{');
  });

  it('puts every key of the daemon under the prefix hash tag, so multi-key scripts stay in one slot', () => {
    const prefix = effectivePrefix('c42x', 'redis+cluster://h1:7000');
    const keys = stateKeys(prefix);
    const all = [
      ...Object.entries(keys).filter(([, v]) => typeof v === 'string').map(([, v]) => v as string),
      keys.sync.session('s-1'), keys.sync.pending('s-1'), keys.sync.pendingIds, keys.sync.xsoarCheckpoint, keys.sync.heldCloses,
    ];
    for (const key of all) assert.equal(hashTag(key), 'c42x', key);
  });

  it('no Lua script names a key it was not given in KEYS (a key built in Lua may live in another slot)', () => {
    const calls = sources('src').flatMap((file) => [...readFileSync(file, 'utf8').matchAll(/redis\.p?call\(\s*['"]([A-Za-z]+)['"]\s*(?:,\s*([^,)]+))?/g)].map((m) => ({ file, command: m[1] ?? '', first: (m[2] ?? '').trim() })));
    assert.ok(calls.length > 20, 'the scripts were found');
    const keyless = new Set(['TIME']);
    const offending = calls.filter((c) => !keyless.has(c.command.toUpperCase()) && !/^KEYS\[\d+\]$/.test(c.first));
    assert.deepEqual(offending, []);
    for (const file of sources('src')) assert.doesNotMatch(readFileSync(file, 'utf8'), /KEYS\[\d+\]\s*\.\./, file);
  });
});
