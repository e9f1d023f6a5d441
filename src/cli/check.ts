import type { Redis } from 'ioredis';
import type { Config } from '../config/load-config.js';
import { severityNumber } from '../code42/vocabulary.js';
import { closeRedis, createRedis, maskRedisUrl } from '../infra/redis.js';
import { withTimeout } from '../infra/timeout.js';
import { createIncydrClient, createXsoarClient } from '../upstreams.js';
import type { CliIo } from './command.js';

const CHECK_TIMEOUT_MS = 15_000;

function timeout<T>(p: Promise<T>, what: string): Promise<T> {
  return withTimeout(p, CHECK_TIMEOUT_MS, `${what}: no answer within ${CHECK_TIMEOUT_MS / 1000} s`);
}

function oneLine(text: string): string {
  return text.replace(/\s+/g, ' ').trim();
}

/**
 * `check`: what the stock integration's "Test" button does, and more: the configuration, a Code42
 * token, one page of sessions with the configured filter, XSOAR's /about with the key, and Redis with
 * its eviction policy. One OK/FAIL line per check; exit 0 only when all pass.
 */
export async function checkCommand(config: Config, io: CliIo): Promise<number> {
  let failures = 0;
  const report = (ok: boolean, name: string, detail: string): void => {
    if (!ok) failures += 1;
    io.out(`${ok ? 'OK  ' : 'FAIL'} ${name}: ${oneLine(detail)}\n`);
  };
  const flavour = config.xsoar.apiKeyId ? `8.x (${config.xsoar.authType} key)` : '6.x';
  report(true, 'config', `valid; Code42 ${config.code42.apiUrl}, XSOAR ${config.xsoar.url} as ${flavour}, Redis ${maskRedisUrl(config.redis.url)}`);

  const code42 = createIncydrClient(config);
  let tokenOk = false;
  try {
    await timeout(code42.tokens.getToken(), 'Code42 token');
    tokenOk = true;
    report(true, 'code42 token', `API client ${config.code42.clientId} got an access token`);
  } catch (err) {
    report(false, 'code42 token', (err as Error).message);
  }
  if (tokenOk) {
    try {
      const since = Date.now() - config.poll.firstFetch;
      const page = await timeout(
        code42.listSessionsPage({ onOrAfter: since, severities: config.code42.severities.map(severityNumber), states: config.code42.states }, 0),
        'Code42 sessions',
      );
      report(
        true,
        'code42 sessions',
        `read one page: ${page.totalCount} session(s) with alerts match ${config.code42.severities.join(',')} / ${config.code42.states.join(',')} since ${new Date(since).toISOString()}`,
      );
    } catch (err) {
      report(false, 'code42 sessions', (err as Error).message);
    }
  } else {
    report(false, 'code42 sessions', 'skipped: no token');
  }

  try {
    const about = await timeout(createXsoarClient(config).about(), 'XSOAR /about');
    const version = typeof about.demistoVersion === 'string' ? about.demistoVersion : 'unknown version';
    report(true, 'xsoar', `the key is accepted; server ${version}`);
  } catch (err) {
    report(false, 'xsoar', (err as Error).message);
  }

  let redis: Redis | undefined;
  try {
    redis = createRedis({ url: config.redis.url, password: config.redis.password, name: 'c42x-check', role: 'command' });
    redis.on('error', () => undefined);
    await timeout(redis.ping(), 'Redis PING');
    let policy = 'unknown (CONFIG GET not allowed)';
    try {
      const reply = (await timeout(redis.config('GET', 'maxmemory-policy'), 'Redis CONFIG GET')) as unknown as string[];
      policy = reply[1] ?? policy;
    } catch {
      // managed Redis often forbids CONFIG; the policy stays unknown
    }
    if (policy === 'noeviction' || policy.startsWith('unknown')) report(true, 'redis', `answers; maxmemory-policy ${policy}`);
    else report(false, 'redis', `maxmemory-policy is ${policy}; BullMQ needs noeviction or queued alerts can be evicted`);
  } catch (err) {
    report(false, 'redis', `${maskRedisUrl(config.redis.url)} does not answer: ${(err as Error).message}`);
  } finally {
    if (redis) await closeRedis(redis);
  }
  return failures === 0 ? 0 : 1;
}
