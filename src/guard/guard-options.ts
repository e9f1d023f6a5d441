import type { IncydrClient } from '../code42/incydr-client.js';
import type { Config } from '../config/load-config.js';
import type { DerivedSettings } from '../config/settings.js';
import type { Logger } from '../infra/logger.js';
import type { XsoarClient } from '../xsoar/xsoar-client.js';
import type { CircuitBreakerOptions } from './circuit-breaker.js';
import type { RedisMemoryGuardOptions } from './redis-memory.js';
import { PROBE_SESSION_ID, upstreamBreakerOptions } from './upstream-breaker.js';
import type { Upstream } from './upstream-status.js';

export interface GuardOptions {
  breaker: Omit<CircuitBreakerOptions, 'pause' | 'resume' | 'clock'>;
  memory: Omit<RedisMemoryGuardOptions, 'redis' | 'pause' | 'resume' | 'clock'>;
}

/** The deployment's guards as the configuration asks (UPSTREAM_*), with their probes and log lines. */
export function guardOptions(
  config: Config,
  settings: DerivedSettings,
  deps: { xsoar: XsoarClient; code42Probe: Pick<IncydrClient, 'getSessionEvents'>; logger: Logger; memoryProbeKey: string; onOutage(upstream: Upstream): void },
): GuardOptions {
  const { xsoar, code42Probe, logger } = deps;
  const pacing = { probeIntervalMs: config.upstream.probeInterval, probeMaxMs: config.upstream.probeMax };
  return {
    breaker: upstreamBreakerOptions({
      threshold: settings.breakerThreshold,
      ...pacing,
      // A search and an events read of a session that does not exist: any answer means "up".
      probes: {
        xsoar: async () => void (await xsoar.findIncidentsForSession(PROBE_SESSION_ID, config.xsoar.incidentType)),
        code42: async () => void (await code42Probe.getSessionEvents(PROBE_SESSION_ID)),
      },
      logger,
      onOutage: deps.onOutage,
    }),
    memory: {
      probeKey: deps.memoryProbeKey,
      ...pacing,
      events: {
        onFull: (full, memory) =>
          logger.error({ reason: full.reason, redisMemory: memory }, 'Redis refuses writes (maxmemory reached): work waits without spending attempts and resumes when Redis accepts writes; raise maxmemory'),
        onRecovered: (downMs, memory) => logger.info({ downMs, redisMemory: memory }, 'Redis accepts writes again; resuming'),
      },
    },
  };
}
