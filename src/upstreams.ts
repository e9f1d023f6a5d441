import type { Code42Clock } from './code42/code42-clock.js';
import { IncydrClient } from './code42/incydr-client.js';
import type { OddityListener } from './code42/oddities.js';
import type { RequestBudget } from './code42/request-budget.js';
import type { Config } from './config/load-config.js';
import type { RequestObserver } from './infra/request-observer.js';
import { XsoarClient } from './xsoar/xsoar-client.js';

/** The Code42 client as configured (the daemon adds the shared budget; CLI commands may not). */
export function createIncydrClient(
  config: Config,
  extra: { budget?: RequestBudget; observer?: RequestObserver; clock?: () => number; onOddity?: OddityListener; retryLimit?: number; serverClock?: Code42Clock } = {},
): IncydrClient {
  return new IncydrClient({
    apiUrl: config.code42.apiUrl,
    clientId: config.code42.clientId,
    clientSecret: config.code42.clientSecret,
    timeoutMs: config.code42.timeout,
    maxResponseBytes: config.code42.maxResponseSize,
    maxEventsResponseBytes: config.code42.maxEventsSize,
    caFile: config.code42.caFile,
    proxy: config.proxy.https,
    noProxy: config.proxy.noProxy,
    retryLimit: config.upstream.code42Retries,
    ...extra,
  });
}

export function createXsoarClient(config: Config, extra: { observer?: RequestObserver } = {}): XsoarClient {
  return new XsoarClient({
    url: config.xsoar.url,
    apiKey: config.xsoar.apiKey,
    apiKeyId: config.xsoar.apiKeyId,
    authType: config.xsoar.authType,
    timeoutMs: config.xsoar.timeout,
    maxResponseBytes: config.xsoar.maxResponseSize,
    caFile: config.xsoar.caFile,
    insecure: config.xsoar.tlsInsecure,
    proxy: config.proxy.https,
    noProxy: config.proxy.noProxy,
    ...extra,
  });
}
