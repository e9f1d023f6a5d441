import type { Config } from '../config/load-config.js';
import { describeUnknownEnv, unknownEnvVariables } from '../config/unknown-env.js';
import { Daemon } from '../daemon.js';
import { createLogger } from '../infra/logger.js';
import { ForwarderMetrics } from '../ops/metrics.js';
import { OpsServer } from '../ops/ops-server.js';
import { createXsoarClient } from '../upstreams.js';
import { checkIncidentType, firstStartNotice } from './deployment-checks.js';
import { closeRedis, createRedis } from '../infra/redis.js';
import { withTimeout } from '../infra/timeout.js';
import { stateKeys } from '../store/keys.js';

/** Shutdown must finish inside Kubernetes' default 30 s grace period. */
const SHUTDOWN_DEADLINE_MS = 25_000;

/**
 * `run`: the daemon. The ops server starts first so /livez answers (and /readyz explains) even while
 * Redis is still unreachable. Resolves with the exit code once stopped by SIGTERM/SIGINT.
 */
export async function runCommand(config: Config, env: Record<string, string | undefined> = process.env): Promise<number> {
  const logger = createLogger({ level: config.log.level });
  for (const v of unknownEnvVariables(env)) logger.warn({ variable: v.name, suggestion: v.suggestion ?? null }, describeUnknownEnv(v));
  const metrics = new ForwarderMetrics();
  const daemon = new Daemon({ config, logger, metrics });
  metrics.setReadiness(() => daemon.readiness());
  const ops = new OpsServer({ host: config.http.host, port: config.http.port, metrics, readiness: () => daemon.readiness(), logger });

  let stopping: Promise<number> | undefined;
  const stop = (signal: NodeJS.Signals): Promise<number> => {
    if (stopping) {
      logger.warn({ signal }, 'second signal: exiting now');
      logger.flush();
      process.exit(1);
    }
    logger.info({ signal, deadlineMs: SHUTDOWN_DEADLINE_MS }, 'shutting down');
    stopping = daemon
      .stop(SHUTDOWN_DEADLINE_MS)
      .then(() => ops.close())
      .then(
        () => 0,
        (err: unknown) => {
          logger.error({ err }, 'shutdown failed');
          return 1;
        },
      )
      .then((code) => {
        logger.flush();
        return code;
      });
    return stopping;
  };
  const stopped = new Promise<number>((resolve) => {
    process.on('SIGTERM', () => void stop('SIGTERM').then(resolve));
    process.on('SIGINT', () => void stop('SIGINT').then(resolve));
  });
  // A closed stdout (e.g. a log pipe that went away) must not kill the daemon.
  process.stdout.on('error', () => undefined);

  await ops.start();
  // Said once at start, without holding it up: XSOAR may well be down right now.
  void checkIncidentType(createXsoarClient(config), config, 15_000).then((line) => {
    if (line.level === 'fail') logger.error({ incidentType: config.xsoar.incidentType }, line.detail);
    // Refused credentials are one error line of the work queues already (once per pause), not two.
    else if (line.level === 'warn' && !line.credentialsRefused) logger.warn({ incidentType: config.xsoar.incidentType }, line.detail);
    else if (line.level === 'warn') logger.debug({ incidentType: config.xsoar.incidentType }, line.detail);
    else logger.info({ incidentType: config.xsoar.incidentType }, `XSOAR incident type ${config.xsoar.incidentType} exists`);
  });
  void announceFirstStart(config, logger);
  try {
    await daemon.start();
  } catch (err) {
    if (!stopping) {
      logger.fatal({ err }, 'start-up failed');
      await daemon.stop(5_000).catch(() => undefined);
      await ops.close();
      return 1;
    }
  }
  return stopped;
}

/**
 * The very first start of a deployment (no checkpoint in Redis) imports FIRST_FETCH of sessions at once,
 * each starting the incident type's playbook: said in one warning, as `check` does. Silent when Redis
 * cannot be asked (the daemon reports that itself).
 */
async function announceFirstStart(config: Config, logger: ReturnType<typeof createLogger>): Promise<void> {
  const redis = createRedis({ url: config.redis.url, password: config.redis.password, name: 'c42x-first-start', role: 'command' });
  redis.on('error', () => undefined);
  try {
    const checkpoint = await withTimeout(redis.get(stateKeys(config.redis.prefix).checkpoint), 5_000, 'Redis GET: no answer');
    const notice = checkpoint === null ? firstStartNotice(config, undefined) : undefined;
    if (notice?.level === 'warn') logger.warn({ firstFetchMs: config.poll.firstFetch, createInvestigation: true }, notice.detail);
  } catch {
    // Redis unreachable: readiness and the daemon's own warning say so.
  } finally {
    await closeRedis(redis).catch(() => undefined);
  }
}
