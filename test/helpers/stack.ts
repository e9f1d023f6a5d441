import { loadConfig, type Config } from '../../src/config/index.js';
import { Code42Simulator, type Code42SimulatorOptions } from '../sims/code42/index.js';
import { XsoarSimulator, type XsoarSimulatorOptions } from '../sims/xsoar/index.js';
import { onCleanup } from './cleanup.js';
import { REDIS_URL, deletePrefix, testRedis, uniquePrefix } from './redis.js';

export const CODE42_CLIENT_ID = 'key-sim-client';
export const CODE42_CLIENT_SECRET = 'sim-client-secret';
export const XSOAR_API_KEY = 'xsoar-sim-api-key-0123456789';

export interface Stack {
  code42: Code42Simulator;
  xsoar: XsoarSimulator;
  prefix: string;
  /** Environment of a daemon pointed at both simulators. */
  env: Record<string, string>;
  config(extra?: Record<string, string>): Config;
  close(): Promise<void>;
}

/** Both simulators on loopback plus a fresh Redis prefix, and the env that ties a daemon to them. */
export async function startStack(
  opts: { code42?: Code42SimulatorOptions; xsoar?: Partial<XsoarSimulatorOptions>; env?: Record<string, string>; name?: string } = {},
): Promise<Stack> {
  const code42 = new Code42Simulator({ clientId: CODE42_CLIENT_ID, clientSecret: CODE42_CLIENT_SECRET, ...opts.code42 });
  const xsoar = new XsoarSimulator({ apiKey: XSOAR_API_KEY, ...opts.xsoar });
  const prefix = uniquePrefix(opts.name ?? 'stack');
  let closed: Promise<void> | undefined;
  const close = (): Promise<void> =>
    (closed ??= (async () => {
      unregister();
      await Promise.allSettled([code42.close(), xsoar.close()]);
      const redis = testRedis();
      await deletePrefix(redis, prefix);
      redis.disconnect();
    })());
  // Registered before the servers start, so a failing test cannot leave them listening.
  const unregister = onCleanup(close);
  await Promise.all([code42.start(), xsoar.start()]);
  const env: Record<string, string> = {
    CODE42_API_URL: code42.url,
    CODE42_CLIENT_ID: CODE42_CLIENT_ID,
    CODE42_CLIENT_SECRET: CODE42_CLIENT_SECRET,
    CODE42_RATE_LIMIT: '60000/min',
    XSOAR_URL: xsoar.url,
    XSOAR_API_KEY: opts.xsoar?.apiKey ?? XSOAR_API_KEY,
    REDIS_URL,
    QUEUE_PREFIX: prefix,
    POLL_INTERVAL: '300ms',
    WORKER_BACKOFF: '100ms',
    XSOAR_TIMEOUT: '2s',
    XSOAR_SEARCH_SETTLE: '100ms',
    HTTP_PORT: '0',
    HTTP_HOST: '127.0.0.1',
    LOG_LEVEL: 'warn',
    // Sweeps compressed like the polls (sessions added mid-test may have ended minutes ago).
    SWEEP_INTERVAL: '3s',
    ...opts.env,
  };
  if (opts.xsoar?.apiKeyId) env.XSOAR_API_KEY_ID = opts.xsoar.apiKeyId;
  return {
    code42,
    xsoar,
    prefix,
    env,
    config: (extra = {}) => loadConfig({ env: { ...env, ...extra } }),
    close,
  };
}
