import { Code42RequestError } from '../code42/errors.js';
import { XsoarUnavailableError } from '../xsoar/errors.js';
import type { Upstream } from './upstream-status.js';

/**
 * Which upstream a failure belongs to when it says "the upstream is down" rather than "this session is
 * wrong": no answer at all (refused, reset, DNS, timeout) or a 5xx/408. Anything else
 * (a 400, a body we cannot use, a mapping error) is about the session and returns undefined.
 */
export function transientUpstream(err: unknown): Upstream | undefined {
  if (err instanceof XsoarUnavailableError) {
    return err.statusCode === undefined || err.statusCode >= 500 ? 'xsoar' : undefined;
  }
  if (err instanceof Code42RequestError) {
    const s = err.statusCode;
    // Not 429: rate limiting is the request budget's and got's business, and an upstream that
    // answers 429 is up (a probe meeting one must not keep the circuit open).
    return s === undefined || s >= 500 || s === 408 ? 'code42' : undefined;
  }
  return undefined;
}

/** One upstream's circuit while it is open. */
export interface OpenCircuit {
  /** When the circuit opened (epoch ms): the upstream has been failing since then. */
  since: number;
  /** The failure that opened it, or the last failed probe's. */
  reason: string;
  /** Probes that failed since it opened. */
  failedProbes: number;
  /** When the next probe runs (epoch ms). */
  nextProbeAt: number;
}

export interface CircuitBreakerEvents {
  /** The circuit opened: the queue is paused for `pauseMs` and a probe follows. */
  onOpen?(upstream: Upstream, circuit: OpenCircuit): void;
  /** A probe failed; the pause is extended to the next probe. */
  onProbeFailed?(upstream: Upstream, circuit: OpenCircuit): void;
  /** The upstream answers again; `downMs` is how long it was out. */
  onClose?(upstream: Upstream, downMs: number, how: 'probe' | 'success'): void;
}

export interface CircuitBreakerOptions {
  /** Consecutive transient failures of one upstream (no success between) that open its circuit. */
  threshold: number;
  /** Delay before the first probe; it doubles after each failed probe. */
  probeIntervalMs: number;
  /** Longest delay between two probes. */
  probeMaxMs: number;
  /**
   * One cheap request that needs the upstream to be up but no particular session. It throws what a job
   * would (transient errors are "still down"; any answer, even a 404 or 400, is "up").
   */
  probes: Record<Upstream, () => Promise<void>>;
  /** Pauses the whole forward queue for `ms` (BullMQ's queue rate limit: no attempt is spent). */
  pause(ms: number): Promise<void>;
  /** Lets the queue run again at once (clears the pause). */
  resume(): Promise<void>;
  events?: CircuitBreakerEvents;
  clock?: () => number;
}

/**
 * A circuit breaker per upstream. An outage is not a session's fault: after `threshold` consecutive
 * transient failures, the upstream's circuit opens, the queue pauses without spending attempts, and a
 * probe (not a session) runs after a backoff that doubles up to `probeMaxMs`. The first probe or job that
 * gets an answer closes it and the queue resumes. Attempts and the failed set stay for what is wrong with
 * one session: a session that alone keeps failing spends `threshold - 1` attempts per opening, because the
 * probe finds the upstream up and closes the circuit again.
 *
 * State is per process. The pause itself lives in Redis and so holds every replica; a replica that did
 * not see the failures spends at most `threshold - 1` attempts before its own circuit opens.
 */
export class CircuitBreaker {
  private readonly failures = new Map<Upstream, number>();
  private readonly open = new Map<Upstream, OpenCircuit>();
  private readonly timers = new Map<Upstream, NodeJS.Timeout>();
  private readonly clock: () => number;
  private stopped = false;

  constructor(private readonly opts: CircuitBreakerOptions) {
    this.clock = opts.clock ?? Date.now;
  }

  /** The open circuits, for readiness and metrics. */
  openCircuits(): Map<Upstream, OpenCircuit> {
    return new Map(this.open);
  }

  isOpen(upstream?: Upstream): boolean {
    return upstream ? this.open.has(upstream) : this.open.size > 0;
  }

  /** Time until the next probe of the soonest open circuit; 0 when none is open. */
  pauseLeftMs(): number {
    let left = 0;
    for (const c of this.open.values()) left = Math.max(left, c.nextProbeAt - this.clock());
    return Math.max(0, left);
  }

  /**
   * Records a transient failure. True when the failure must not cost the job an attempt: the circuit is
   * (now) open and the queue is paused.
   */
  async recordFailure(upstream: Upstream, reason: string): Promise<boolean> {
    if (this.open.has(upstream)) {
      await this.pauseUntilProbe();
      return true;
    }
    const count = (this.failures.get(upstream) ?? 0) + 1;
    this.failures.set(upstream, count);
    if (count < this.opts.threshold) return false;
    const now = this.clock();
    const circuit: OpenCircuit = { since: now, reason, failedProbes: 0, nextProbeAt: now + this.opts.probeIntervalMs };
    this.open.set(upstream, circuit);
    this.scheduleProbe(upstream, this.opts.probeIntervalMs);
    await this.pauseUntilProbe();
    this.opts.events?.onOpen?.(upstream, { ...circuit });
    return true;
  }

  /** The upstream answered (a job succeeded): reset the count and close its circuit. */
  recordSuccess(upstream: Upstream): void {
    this.failures.set(upstream, 0);
    this.close(upstream, 'success');
  }

  /** Stops the probes (daemon shutdown). */
  stop(): void {
    this.stopped = true;
    for (const t of this.timers.values()) clearTimeout(t);
    this.timers.clear();
  }

  private close(upstream: Upstream, how: 'probe' | 'success'): void {
    const circuit = this.open.get(upstream);
    if (!circuit) return;
    this.open.delete(upstream);
    clearTimeout(this.timers.get(upstream));
    this.timers.delete(upstream);
    this.opts.events?.onClose?.(upstream, this.clock() - circuit.since, how);
    if (this.open.size === 0) void this.opts.resume().catch(() => undefined);
  }

  /** Pauses the queue until the latest next probe, plus a margin so it does not run out before the probe. */
  private async pauseUntilProbe(): Promise<void> {
    await this.opts.pause(this.pauseLeftMs() + Math.min(1_000, this.opts.probeIntervalMs));
  }

  private scheduleProbe(upstream: Upstream, delayMs: number): void {
    if (this.stopped) return;
    clearTimeout(this.timers.get(upstream));
    const timer = setTimeout(() => void this.probe(upstream), delayMs);
    timer.unref();
    this.timers.set(upstream, timer);
  }

  private async probe(upstream: Upstream): Promise<void> {
    const circuit = this.open.get(upstream);
    if (!circuit || this.stopped) return;
    try {
      await this.opts.probes[upstream]();
    } catch (err) {
      if (transientUpstream(err) === upstream) {
        if (!this.open.has(upstream) || this.stopped) return;
        circuit.failedProbes += 1;
        circuit.reason = (err as Error).message;
        const delay = Math.min(this.opts.probeMaxMs, this.opts.probeIntervalMs * 2 ** circuit.failedProbes);
        circuit.nextProbeAt = this.clock() + delay;
        this.scheduleProbe(upstream, delay);
        await this.pauseUntilProbe().catch(() => undefined);
        this.opts.events?.onProbeFailed?.(upstream, { ...circuit });
        return;
      }
      // Any other answer means the upstream is there; what is wrong is for the jobs to find out.
    }
    this.failures.set(upstream, 0);
    this.close(upstream, 'probe');
  }
}
