/**
 * Writes the other side refused. A refused write is not a crash: the run goes on with the next
 * session. So that it is not silent either, each refusal is counted (metric by direction and reason),
 * kept on the session's sync record (`status <sessionId>`), and kept per direction for the whole
 * deployment in Redis, where every replica's /readyz reads it (degraded until a write in that
 * direction succeeds again, or the refusal is older than the window).
 */
import type { RedisConnection } from '../infra/redis.js';
import type { CheckResult, ReadinessSource } from '../infra/health.js';
import { Code42AuthError, Code42RequestError, Code42TlsError } from '../code42/errors.js';
import { XsoarAuthError, XsoarRejectedError, XsoarTlsError } from '../xsoar/errors.js';
import { readStoredJson } from '../store/stored-json.js';

export type SyncDirection = 'to-code42' | 'to-xsoar';

/** Why a write was refused, as a metric label. */
export type RefusalReason = 'forbidden' | 'too_many_notes' | 'not_found' | 'rejected';

export interface Refusal {
  reason: RefusalReason;
  /** What was refused and the server's answer (no secrets: the answers of Code42 and XSOAR only). */
  detail: string;
  at: number;
  /** Refusals in this direction since the last successful write. */
  count: number;
}

/** Reads a write failure as a refusal; undefined when it is not one (an outage, a timeout: retried as before). */
export function refusalOf(err: unknown): RefusalReason | undefined {
  if (err instanceof Code42TlsError || err instanceof XsoarTlsError) return undefined;
  if (err instanceof Code42AuthError || err instanceof XsoarAuthError) return 'forbidden';
  const status = err instanceof Code42RequestError ? err.statusCode : err instanceof XsoarRejectedError ? err.statusCode : undefined;
  if (status === undefined || status < 400 || status >= 500 || status === 429) return undefined;
  if (status === 401 || status === 403) return 'forbidden';
  if (status === 404) return 'not_found';
  if (/too many notes/i.test((err as Error).message)) return 'too_many_notes';
  return 'rejected';
}

export interface RefusalCounter {
  refused(direction: SyncDirection, reason: RefusalReason): void;
}

export class SyncRefusals {
  private readonly key: string;

  constructor(
    private readonly redis: RedisConnection,
    prefix: string,
    private readonly metrics: RefusalCounter,
    private readonly clock: () => number = Date.now,
  ) {
    this.key = `${prefix}:state:sync:refused`;
  }

  /** Counts a refused write and keeps it as the direction's latest refusal. */
  async record(direction: SyncDirection, reason: RefusalReason, detail: string): Promise<void> {
    this.metrics.refused(direction, reason);
    const previous = await this.latest(direction);
    const refusal: Refusal = { reason, detail: detail.slice(0, 300), at: this.clock(), count: (previous?.count ?? 0) + 1 };
    await this.redis.hset(this.key, direction, JSON.stringify(refusal));
  }

  /** A write in this direction went through: the direction is no longer refused. */
  async cleared(direction: SyncDirection): Promise<void> {
    await this.redis.hdel(this.key, direction);
  }

  async latest(direction: SyncDirection): Promise<Refusal | undefined> {
    return readStoredJson<Refusal>(await this.redis.hget(this.key, direction), (r) =>
      typeof r.reason === 'string' && typeof r.at === 'number' ? { reason: r.reason as RefusalReason, detail: String(r.detail ?? ''), at: r.at, count: Number(r.count ?? 1) } : undefined,
    );
  }
}

/**
 * /readyz `syncWrites`: degraded while writes of an enabled direction are refused (within `windowMs`
 * of the last refusal and no success since). Never unready: the daemon keeps forwarding.
 */
export function refusalReadiness(refusals: Pick<SyncRefusals, 'latest'>, directions: readonly SyncDirection[], windowMs: number): ReadinessSource {
  return {
    name: 'syncWrites',
    async check(now: number): Promise<CheckResult> {
      const found: string[] = [];
      let since: number | undefined;
      for (const direction of directions) {
        const r = await refusals.latest(direction);
        if (!r || now - r.at > windowMs) continue;
        since = since === undefined ? r.at : Math.min(since, r.at);
        const side = direction === 'to-code42' ? 'Code42' : 'XSOAR';
        found.push(`${side} refused ${r.count} sync write(s) (${r.reason}), last ${Math.round((now - r.at) / 1000)} s ago: ${r.detail}`);
      }
      if (found.length === 0) return { ok: true, detail: directions.length === 0 ? 'the sync writes nothing' : `no refused write (${directions.join(', ')})` };
      return { ok: true, degraded: true, since: new Date(since ?? now).toISOString(), detail: found.join('; ') };
    },
  };
}
