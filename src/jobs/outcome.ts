import { DelayedError, RateLimitError, UnrecoverableError } from 'bullmq';
import { ForwarderError, type ErrorFacts } from '../infra/errors.js';
import { isRedisOomError } from '../guard/redis-memory.js';

/**
 * What happens to a job after a failure, decided in one place for every queue from what the error says
 * about itself (its `facts`):
 *
 * | the error says                   | the job                                  | attempts |
 * |----------------------------------|------------------------------------------|----------|
 * | already a BullMQ outcome         | as thrown (delayed, handed back, failed) | as BullMQ|
 * | Redis refused a write for memory | handed back; this process pauses         | none     |
 * | upstream throttles (429)         | handed back; the queue pauses            | none     |
 * | upstream refuses credentials     | handed back; the queue pauses            | none     |
 * | upstream down (no answer, 5xx)   | the breaker counts it; once open, handed back and every queue pauses | none once open |
 * | permanent (bad input, refusal, record gone) | failed set at once, with the reason | -  |
 * | anything else                    | retried with backoff, then the failed set | one      |
 */
export type JobOutcome =
  | { action: 'as-thrown'; error: Error }
  | { action: 'redis-full'; reason: string }
  | { action: 'pause'; facts: ErrorFacts; reason: string }
  | { action: 'outage'; facts: ErrorFacts & { upstream: NonNullable<ErrorFacts['upstream']> }; reason: string }
  | { action: 'fail'; facts: ErrorFacts; reason: string }
  | { action: 'retry'; facts: ErrorFacts; reason: string };

/** The facts of any thrown value: ours say them; anything else is worth another attempt. */
export function factsOf(err: unknown): ErrorFacts {
  return err instanceof ForwarderError ? err.facts : { nature: 'retry', failure: 'unknown' };
}

/** The outcome table (see JobOutcome). Pure: the worker shell carries it out. */
export function outcomeOf(err: unknown): JobOutcome {
  if (err instanceof DelayedError || err instanceof RateLimitError || err instanceof UnrecoverableError) return { action: 'as-thrown', error: err };
  const reason = err instanceof Error ? err.message : String(err);
  if (isRedisOomError(err)) return { action: 'redis-full', reason };
  const facts = factsOf(err);
  switch (facts.nature) {
    case 'throttled':
    case 'credentials':
      return { action: 'pause', facts, reason };
    case 'permanent':
      return { action: 'fail', facts, reason };
    case 'outage':
      if (facts.upstream) return { action: 'outage', facts: { ...facts, upstream: facts.upstream }, reason };
      return { action: 'retry', facts, reason };
    default:
      return { action: 'retry', facts, reason };
  }
}
