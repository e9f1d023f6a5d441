import type { Logger } from '../infra/logger.js';
import type { CircuitBreakerOptions } from './circuit-breaker.js';
import type { Upstream } from './upstream-status.js';

/** A session id no alert has: the probes ask for it, and any answer (even "not found") means "up". */
export const PROBE_SESSION_ID = 'c42x-upstream-probe';

export interface UpstreamBreakerSpec {
  threshold: number;
  probeIntervalMs: number;
  probeMaxMs: number;
  /** One cheap request per upstream that needs it up but no particular session. */
  probes: Record<Upstream, () => Promise<void>>;
  logger: Logger;
  /** Counted once per opening. */
  onOutage?(upstream: Upstream): void;
}

const label = (u: Upstream): string => (u === 'xsoar' ? 'XSOAR' : 'Code42');

/** The circuit breaker's options with its log lines: one when an outage begins, one when it ends. */
export function upstreamBreakerOptions(spec: UpstreamBreakerSpec): Omit<CircuitBreakerOptions, 'pause' | 'resume' | 'clock'> {
  const { logger } = spec;
  return {
    threshold: spec.threshold,
    probeIntervalMs: spec.probeIntervalMs,
    probeMaxMs: spec.probeMaxMs,
    probes: spec.probes,
    events: {
      onOpen: (u, c) => {
        spec.onOutage?.(u);
        logger.error(
          { upstream: u, reason: c.reason, nextProbeInMs: c.nextProbeAt - c.since },
          `${label(u)} is down (${c.reason}): the work queues wait without spending attempts and probe ${label(u)} until it answers`,
        );
      },
      onProbeFailed: (u, c) => logger.debug({ upstream: u, reason: c.reason, failedProbes: c.failedProbes }, `${label(u)} still down`),
      onClose: (u, downMs) => logger.info({ upstream: u, downMs }, `${label(u)} answers again after ${Math.round(downMs / 100) / 10} s; the work queues resume`),
    },
  };
}
