import { ForwarderError } from '../infra/errors.js';

/**
 * This process no longer holds the job's lock (it was frozen or stalled past WORKER_LOCK_DURATION and another
 * process took the job over): it must not create the incident.
 */
export class OwnershipLostError extends ForwarderError {
  constructor(readonly sessionId: string) {
    super('OWNERSHIP_LOST', `session ${sessionId}: the job was taken over by another process; not creating`);
  }
}
