import { z } from 'zod';
import { SessionSchema, type Session } from '../code42/schemas.js';

/** Payload of a forward job: the session as the poller read it (never a secret). */
export interface ForwardJobData {
  v: 1;
  sessionId: string;
  session: Session;
  /** When the poller read it (epoch ms). */
  polledAt: number;
}

const ForwardJobDataSchema = z.object({
  v: z.literal(1),
  sessionId: z.string().min(1),
  session: z.unknown(),
  polledAt: z.number(),
});

/**
 * Validates a forward job's payload as it comes back out of Redis. Throws an Error whose message
 * names the bad field.
 */
export function parseForwardJobData(data: unknown): ForwardJobData {
  const envelope = ForwardJobDataSchema.safeParse(data);
  if (!envelope.success) {
    const issue = envelope.error.issues[0];
    throw new Error(`job data: field ${issue?.path.join('.') || '(root)'}: ${issue?.message ?? 'invalid'}`);
  }
  const session = SessionSchema.safeParse(envelope.data.session);
  if (!session.success) {
    const issue = session.error.issues[0];
    const path = issue?.path.map((p) => (typeof p === 'number' ? `[${p}]` : `.${String(p)}`)).join('') ?? '';
    throw new Error(`session ${envelope.data.sessionId}: field session${path}: ${issue?.message ?? 'invalid'}`);
  }
  if (session.data.sessionId !== envelope.data.sessionId) {
    throw new Error(`job data: sessionId ${envelope.data.sessionId} does not match session.sessionId ${session.data.sessionId}`);
  }
  return { v: 1, sessionId: envelope.data.sessionId, session: session.data, polledAt: envelope.data.polledAt };
}
