/** The two systems the daemon talks to. */
export type Upstream = 'code42' | 'xsoar';

/**
 * Reason classes of failed jobs (failed-set reasons and the `failures_total` metrics):
 * the session's own fault (`invalid_input`, `xsoar_rejected`, `gone`), the deployment's condition
 * (`auth`, `upstream_down`, `redis_full`), or a failure that another attempt may fix (`transient`, `unknown`).
 */
export type FailureClass = 'invalid_input' | 'xsoar_rejected' | 'gone' | 'auth' | 'transient' | 'unknown' | 'not_stored' | 'upstream_down' | 'redis_full';

/**
 * What an error says about itself, so one outcome table can decide for every queue what happens next:
 * - `outage`: the upstream is down (no answer, 5xx); the circuit breaker may pause the queues instead of spending attempts;
 * - `throttled`: the upstream asks to slow down (`retryAfterMs`); the queue pauses, no attempt is spent;
 * - `credentials`: the upstream refuses our credentials; the queue pauses, no attempt is spent;
 * - `permanent`: retrying cannot help (bad input, a refusal, a record gone); straight to the failed set;
 * - `retry`: another attempt may work; it costs one.
 */
export interface ErrorFacts {
  nature: 'outage' | 'throttled' | 'credentials' | 'permanent' | 'retry';
  failure: FailureClass;
  upstream?: Upstream;
  retryAfterMs?: number;
  /** The request may have been carried out although no success came back (a create is searched for first). */
  maybeSent?: boolean;
}

/**
 * Base class of every error this project throws on purpose. Each subclass has a stable `code`
 * that logs, metrics and the failed-job reasons use, keeps the underlying `cause`, and says what
 * it means for a job through `facts`.
 */
export class ForwarderError extends Error {
  readonly code: string;

  constructor(code: string, message: string, options?: { cause?: unknown }) {
    super(message, options);
    this.name = this.constructor.name;
    this.code = code;
  }

  /** What this failure means for the job that met it. @defaultValue another attempt may work */
  get facts(): ErrorFacts {
    return { nature: 'retry', failure: 'unknown' };
  }
}
