import type { Redis } from 'ioredis';
import type { StateKeys } from './keys.js';

/**
 * The exactly-once record: session id → XSOAR incident id, written right after XSOAR accepted the
 * incident and read before every create. Beside it, an "in flight" mark written just before each
 * create: if a create's outcome is unknown (crash, timeout, lost response, 5xx), the mark survives and
 * the next attempt searches XSOAR before creating again.
 */
export class Ledger {
  private readonly inflightKey: string;

  constructor(
    private readonly redis: Redis,
    private readonly keys: StateKeys,
  ) {
    this.inflightKey = `${keys.ledger}:inflight`;
  }

  async incidentFor(sessionId: string): Promise<string | null> {
    return this.redis.hget(this.keys.ledger, sessionId);
  }

  /** The incident already made for the session and the start of an unfinished create, in one round trip. */
  async lookup(sessionId: string): Promise<{ incidentId: string | null; inFlightSince: number | null }> {
    const replies = (await this.redis.pipeline().hget(this.keys.ledger, sessionId).hget(this.inflightKey, sessionId).exec()) ?? [];
    for (const [err] of replies) if (err) throw err;
    const incidentId = (replies[0]?.[1] as string | null | undefined) ?? null;
    const inFlight = (replies[1]?.[1] as string | null | undefined) ?? null;
    return { incidentId, inFlightSince: inFlight === null ? null : Number(inFlight) };
  }

  /** Records the incident and clears the in-flight mark in one step. */
  async record(sessionId: string, incidentId: string): Promise<void> {
    await this.redis.multi().hset(this.keys.ledger, sessionId, incidentId).hdel(this.inflightKey, sessionId).exec();
  }

  async forget(sessionId: string): Promise<void> {
    await this.redis.hdel(this.keys.ledger, sessionId);
  }

  async markInFlight(sessionId: string, at: number): Promise<void> {
    await this.redis.hset(this.inflightKey, sessionId, String(at));
  }

  /** The create definitely did not happen (refused, rate limited, never connected). */
  async clearInFlight(sessionId: string): Promise<void> {
    await this.redis.hdel(this.inflightKey, sessionId);
  }
}
