import type { RedisConnection } from '../infra/redis.js';
import type { Config } from '../config/load-config.js';
import { describeUnknownEnv, unknownEnvVariables } from '../config/unknown-env.js';
import { severityNumber } from '../code42/vocabulary.js';
import { closeRedis, createRedis, maskRedisUrl } from '../infra/redis.js';
import { maskUrlCredentials } from '../infra/mask-url.js';
import { withTimeout } from '../infra/timeout.js';
import { stateKeys } from '../store/keys.js';
import { createIncydrClient, createXsoarClient } from '../upstreams.js';
import { XsoarRejectedError } from '../xsoar/errors.js';
import type { CliIo } from './command.js';
import { SessionActions } from '../code42/session-actions.js';
import { describeSyncPlan, syncDirections } from '../sync/sync-plan.js';
import { checkIncidentType, firstStartNotice, type CheckLine } from './deployment-checks.js';

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
  const line = (l: CheckLine): void => {
    if (l.level === 'warn') io.out(`WARN ${l.name}: ${oneLine(l.detail)}\n`);
    else report(l.level === 'ok', l.name, l.detail);
  };
  const flavour = config.xsoar.apiKeyId ? `8.x (${config.xsoar.authType} key)` : '6.x';
  report(
    true,
    'config',
    `valid; Code42 ${maskUrlCredentials(config.code42.apiUrl)}, XSOAR ${maskUrlCredentials(config.xsoar.url)} as ${flavour}, Redis ${maskRedisUrl(config.redis.url)}`,
  );
  // A misspelt variable would silently leave its setting at the default.
  for (const v of unknownEnvVariables(io.env)) report(false, 'env', describeUnknownEnv(v));

  const code42 = createIncydrClient(config);
  let tokenOk = false;
  try {
    await timeout(code42.tokens.getToken(), 'Code42 token');
    tokenOk = true;
    report(true, 'code42 token', `API client ${config.code42.clientId} got an access token`);
  } catch (err) {
    report(false, 'code42 token', (err as Error).message);
  }
  let matching: number | undefined;
  if (tokenOk) {
    try {
      const since = Date.now() - config.poll.firstFetch;
      const page = await timeout(
        code42.listSessionsPage({ onOrAfter: since, severities: config.code42.severities.map(severityNumber), states: config.code42.states }, 0),
        'Code42 sessions',
      );
      if (page.totalCount !== undefined && page.totalCount !== null) matching = page.totalCount;
      report(
        true,
        'code42 sessions',
        `read one page: ${page.totalCount ?? `${page.items.length}${page.items.length > 0 ? '+' : ''}`} session(s) with alerts match ${config.code42.severities.join(',')} / ${config.code42.states.join(',')} since ${new Date(since).toISOString()}`,
      );
    } catch (err) {
      report(false, 'code42 sessions', (err as Error).message);
    }
  } else {
    report(false, 'code42 sessions', 'skipped: no token');
  }

  await checkSyncPermissions(config, code42, tokenOk, report);

  for (const l of await checkXsoar(config)) line(l);
  let redis: RedisConnection | undefined;
  let lastError: Error | undefined;
  try {
    redis = createRedis({ url: config.redis.url, password: config.redis.password, name: 'c42x-check', role: 'command' });
    redis.on('error', (err: Error) => {
      lastError = err;
    });
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
    // No checkpoint yet: this deployment has never polled, and its first run imports FIRST_FETCH at once.
    const checkpoint = await timeout(redis.get(stateKeys(config.redis.prefix).checkpoint), 'Redis GET');
    if (checkpoint === null) {
      const notice = firstStartNotice(config, matching);
      if (notice) line(notice);
    }
  } catch (err) {
    report(false, 'redis', `${maskRedisUrl(config.redis.url)} does not answer: ${redisReason(err as Error, lastError)}`);
  } finally {
    if (redis) await closeRedis(redis);
  }
  return failures === 0 ? 0 : 1;
}

/**
 * What each enabled sync direction needs. to-code42 (STATE_SYNC=both or to-code42) writes sessions: the
 * probe writes to a session id that does not exist, so nothing changes, and fails when Code42 refuses the
 * permission. to-xsoar writes with the XSOAR key the creates use (checked below).
 */
async function checkSyncPermissions(
  config: Config,
  code42: ReturnType<typeof createIncydrClient>,
  tokenOk: boolean,
  report: (ok: boolean, name: string, detail: string) => void,
): Promise<void> {
  // The default (to-xsoar) writes nothing to Code42: a read-only API client is enough, and nothing is probed.
  if (!syncDirections(config).includes('to-code42')) return;
  if (!tokenOk) {
    report(false, 'code42 write permission', 'skipped: no token');
    return;
  }
  try {
    const permission = await timeout(new SessionActions(code42).probeWritePermission(), 'Code42 write permission');
    if (permission.allowed) report(true, 'code42 write permission', `${describeSyncPlan(config)}; ${permission.detail}`);
    else
      report(
        false,
        'code42 write permission',
        `STATE_SYNC=${config.sync.stateSync} needs the permission to change sessions (${permission.endpoint}), which API client ${config.code42.clientId} lacks: ${permission.detail}; grant it, or set STATE_SYNC=to-xsoar (nothing is then written to Code42)`,
      );
  } catch (err) {
    report(false, 'code42 write permission', `could not check: ${(err as Error).message}`);
  }
}

/**
 * Why Redis did not answer, in the operator's words: ioredis reports a refused connection as "Reached
 * the max retries per request limit … maxRetriesPerRequest", which names its own option, not the cause.
 */
function redisReason(err: Error, lastConnectionError: Error | undefined): string {
  if (!/maxRetriesPerRequest|Connection is closed|no answer within/.test(err.message)) return err.message;
  const cause = lastConnectionError ? (lastConnectionError as NodeJS.ErrnoException).code ?? lastConnectionError.message : undefined;
  return cause ? `no connection (${cause})` : 'no connection';
}

/**
 * XSOAR, the way real clients test a key: `/about` (demisto-py; `/xsoar/about` on XSOAR 8) and `GET /user`
 * (the Core REST API integration's test; `/xsoar/user` on XSOAR 8). Then what would make every create fail or
 * land Unclassified: an incident type the server does not have, a playbook id it does not know (warnings: a key
 * without the right to read them must not fail the check).
 */
async function checkXsoar(config: Config): Promise<CheckLine[]> {
  const lines: CheckLine[] = [];
  const xsoar = createXsoarClient(config);
  try {
    const about = (await timeout(xsoar.probe('about'), 'XSOAR /about')) as Record<string, unknown> | null;
    const version = about && typeof about.demistoVersion === 'string' ? about.demistoVersion : 'unknown version';
    lines.push({ level: 'ok', name: 'xsoar', detail: `the key is accepted; server ${version}` });
  } catch (err) {
    lines.push({ level: 'fail', name: 'xsoar', detail: (err as Error).message });
    return lines;
  }
  try {
    const user = (await timeout(xsoar.probe('user'), 'XSOAR /user')) as Record<string, unknown> | null;
    const name = user && typeof user.username === 'string' ? user.username : user && typeof user.id === 'string' ? user.id : 'unknown user';
    lines.push({ level: 'ok', name: 'xsoar user', detail: `the key acts as ${name}` });
  } catch (err) {
    // /about already proved the key: a server without the /user route is no reason to fail it.
    if (err instanceof XsoarRejectedError && err.statusCode === 404) {
      lines.push({ level: 'warn', name: 'xsoar user', detail: 'this server has no /user route (HTTP 404); the key is proven by /about, so the user it acts as is not shown' });
    } else {
      lines.push({ level: 'fail', name: 'xsoar user', detail: (err as Error).message });
    }
  }
  lines.push(await checkIncidentType(xsoar, config, CHECK_TIMEOUT_MS));
  const playbook = config.xsoar.playbookId;
  if (playbook) {
    try {
      const found = await timeout(xsoar.searchPlaybooks(`id:${JSON.stringify(playbook)}`), 'XSOAR playbooks');
      if (found.some((p) => p.id === playbook || p.name === playbook)) lines.push({ level: 'ok', name: 'xsoar playbook', detail: `${playbook} exists` });
      else lines.push({ level: 'warn', name: 'xsoar playbook', detail: `XSOAR knows no playbook "${playbook}" (XSOAR_PLAYBOOK_ID): every create would be refused with 400` });
    } catch (err) {
      lines.push({ level: 'warn', name: 'xsoar playbook', detail: `could not search playbooks to check "${playbook}": ${(err as Error).message}` });
    }
  }
  return lines;
}
