import { ForwarderError, type Upstream } from '../infra/errors.js';

export type { Upstream };

/**
 * Whether each upstream currently refuses our credentials. Readiness reports it; the worker sets it
 * when an upstream answers 401/403 and clears it on the next success.
 */
export class UpstreamStatus {
  private readonly authFailures = new Map<Upstream, { message: string; since: number }>();
  private readonly okListeners: Array<(upstream: Upstream) => void> = [];

  markAuthFailure(upstream: Upstream, message: string, at = Date.now()): boolean {
    const first = !this.authFailures.has(upstream);
    if (first) this.authFailures.set(upstream, { message, since: at });
    return first;
  }

  /** A run against `upstream` ended: ok clears a refusal, refused credentials mark one. */
  /**
   * A scheduled run against `upstream` ended (the poll). Its success clears a credentials refusal, but it
   * does not close a circuit: the listing may answer while the endpoints the work queues need (events, say)
   * are down, and a circuit closed by each poll would open again at once (the breaker's probe decides).
   */
  observe(upstream: Upstream, outcome: 'ok' | 'error' | 'skipped', error?: unknown): void {
    if (outcome === 'ok') this.authFailures.delete(upstream);
    const facts = error instanceof ForwarderError ? error.facts : undefined;
    if (facts?.nature === 'credentials' && facts.upstream === upstream) this.markAuthFailure(upstream, (error as Error).message);
  }

  markOk(upstream: Upstream): void {
    this.authFailures.delete(upstream);
    for (const listener of this.okListeners) listener(upstream);
  }

  /** Called on every success of `upstream` (the circuit breaker closes on it). */
  onOk(listener: (upstream: Upstream) => void): void {
    this.okListeners.push(listener);
  }

  authFailure(upstream: Upstream): { message: string; since: number } | undefined {
    return this.authFailures.get(upstream);
  }
}
