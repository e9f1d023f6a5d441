import type { Queue } from 'bullmq';
import { Code42ResponseError } from '../code42/errors.js';
import { SessionSchema, currentSeverity, currentStateNames, parseOrThrow, type Session } from '../code42/schemas.js';
import { isKnownState, severityNumber, type SessionState, type SeverityWord } from '../code42/vocabulary.js';
import type { Logger } from '../infra/logger.js';
import { findForbiddenKey } from '../infra/safe-json.js';
import type { ForwardJobData } from '../forward/job-data.js';
import { forwardJobId } from '../store/keys.js';
import type { RejectedLog } from './rejected-log.js';

export interface IntakeResult {
  /** Valid sessions inside the filter, by id (a session listed twice counts once). */
  valid: Map<string, Session>;
  /** Every valid session, inside the filter or not (the poller tracks changes of forwarded ones). */
  all: Map<string, Session>;
  filtered: number;
  /** Invalid items recorded for the first time. */
  rejected: number;
}

export interface SessionIntakeOptions {
  rejected: RejectedLog;
  severities: readonly SeverityWord[];
  states: readonly SessionState[];
  logger: Logger;
  clock?: () => number;
}

/**
 * The door every session from Code42 passes: validated (invalid items are recorded with their reason
 * in the rejected-input log, never dropped silently) and checked against the operator's filter.
 */
export class SessionIntake {
  private readonly severityNumbers: number[];

  constructor(private readonly opts: SessionIntakeOptions) {
    this.severityNumbers = opts.severities.map(severityNumber);
  }

  get severities(): number[] {
    return this.severityNumbers;
  }

  async accept(items: readonly unknown[]): Promise<IntakeResult> {
    const { logger } = this.opts;
    const result: IntakeResult = { valid: new Map(), all: new Map(), filtered: 0, rejected: 0 };
    for (const raw of items) {
      let session: Session;
      try {
        const forbidden = findForbiddenKey(raw);
        if (forbidden) {
          const id = raw && typeof raw === 'object' ? (raw as { sessionId?: unknown }).sessionId : undefined;
          const sessionId = typeof id === 'string' ? id : undefined;
          throw new Code42ResponseError(`${sessionId ? `session ${sessionId}` : 'session'}: field ${forbidden}: forbidden key (possible prototype pollution)`, {
            field: forbidden,
            ...(sessionId ? { sessionId } : {}),
          });
        }
        session = parseOrThrow(SessionSchema, raw, 'session');
      } catch (err) {
        if (!(err instanceof Code42ResponseError)) throw err;
        const sessionId = err.sessionId ?? null;
        const isNew = await this.opts.rejected.record({ sessionId, reason: err.message, raw, at: (this.opts.clock ?? Date.now)() });
        if (isNew) {
          result.rejected += 1;
          logger.warn({ alertId: sessionId ?? undefined, field: err.field, reason: err.message }, 'session rejected: invalid input from Code42');
        }
        continue;
      }
      result.all.set(session.sessionId, session);
      if (!this.matches(session)) {
        result.filtered += 1;
        const states = currentStateNames(session);
        const unknown = states.filter((s) => !isKnownState(s));
        logger.debug(
          { alertId: session.sessionId, severity: currentSeverity(session), state: states.join('/') || null, ...(unknown.length > 0 ? { unknownState: unknown.join('/') } : {}) },
          'session skipped: severity or state outside the configured filter',
        );
        continue;
      }
      result.valid.set(session.sessionId, session);
    }
    return result;
  }

  /**
   * The operator's filter, applied here: the poller reads every severity and state to see escalations and
   * changes. The current state matches under either of its names (`state`, `stateV2`); a session without a
   * state history matches no state.
   */
  matches(session: Session): boolean {
    const wanted = this.opts.states as readonly string[];
    return this.severityNumbers.includes(currentSeverity(session)) && currentStateNames(session).some((s) => wanted.includes(s));
  }
}

/** Adds one forward job per session; resolves once they are stored in Redis. */
export async function enqueueSessions(queue: Queue, sessions: readonly Session[], polledAt: number): Promise<void> {
  if (sessions.length === 0) return;
  await queue.addBulk(
    sessions.map((session) => {
      const data: ForwardJobData = { v: 1, sessionId: session.sessionId, session, polledAt };
      return { name: 'forward', data, opts: { jobId: forwardJobId(session.sessionId) } };
    }),
  );
}
