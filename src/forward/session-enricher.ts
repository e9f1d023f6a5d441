import { LRUCache } from 'lru-cache';
import type { EventsKeep } from '../code42/events-stream.js';
import type { IncydrClient } from '../code42/incydr-client.js';
import type { Session } from '../code42/schemas.js';
import type { Enrichment } from '../xsoar/incident-mapper.js';

export interface SessionEnricherOptions {
  client: Pick<IncydrClient, 'getActor' | 'getRule' | 'getSessionEvents'>;
  includeFiles: boolean;
  /**
   * How many file events to keep of a session (MAX_FILE_EVENTS, and no more JSON than the create body budget);
   * the rest are counted only. @defaultValue all
   */
  eventsKeep?: EventsKeep;
  /** How long a looked-up name stays cached. */
  cacheTtlMs: number;
  /** Most names kept per cache. @defaultValue 20000 */
  cacheMax?: number;
}

interface CachedName {
  name: string | null;
}

/**
 * Adds what the incident needs beyond the session: file events, actor name, rule names. Names come
 * from the session when Code42 puts them there (newer tenants); the rest are looked up once per TTL,
 * shared by every worker of the process, with one request in flight per id.
 */
export class SessionEnricher {
  private readonly actors: LRUCache<string, CachedName>;
  private readonly rules: LRUCache<string, CachedName>;

  constructor(private readonly opts: SessionEnricherOptions) {
    const common = { max: opts.cacheMax ?? 20_000, ttl: opts.cacheTtlMs };
    this.actors = new LRUCache<string, CachedName>({
      ...common,
      fetchMethod: async (actorId) => ({ name: (await opts.client.getActor(actorId))?.name ?? null }),
    });
    this.rules = new LRUCache<string, CachedName>({
      ...common,
      fetchMethod: async (ruleId) => ({ name: (await opts.client.getRule(ruleId))?.name ?? null }),
    });
  }

  async enrich(session: Session): Promise<Enrichment> {
    const [actorName, ruleNames, events] = await Promise.all([
      this.actorName(session),
      this.ruleNames(session),
      this.opts.includeFiles ? this.opts.client.getSessionEvents(session.sessionId, this.opts.eventsKeep) : Promise.resolve({ events: [], totalCount: 0 }),
    ]);
    return { actorName, ruleNames, events: events.events, eventsTotal: Math.max(events.totalCount, events.events.length) };
  }

  /**
   * The actor's name: the session's `actorName` when Code42 puts it there (newer tenants; it saves the
   * lookup), else the actor's name looked up; an actor whose name is null or missing (the SDK allows it)
   * falls back to the actor id rather than failing the job.
   */
  private async actorName(session: Session): Promise<string | null> {
    if (session.actorName) return session.actorName;
    const looked = session.actorId ? (await this.actors.fetch(session.actorId))?.name : null;
    return looked || session.actorId || null;
  }

  /**
   * One name per triggered alert, in the session's order, as the stock integration joins them (two
   * alerts of one rule name it twice); each distinct rule is looked up once. Deleted rules (404) are
   * left out, and an alert with a null `ruleId` names no rule unless it carries its `ruleName`.
   */
  private async ruleNames(session: Session): Promise<string[]> {
    const alerts = session.triggeredAlerts ?? [];
    const names = new Map<string, string | null>();
    for (const alert of alerts) if (alert.ruleId && alert.ruleName) names.set(alert.ruleId, alert.ruleName);
    const missing = [...new Set(alerts.map((a) => a.ruleId).filter((id): id is string => !!id && !names.has(id)))];
    await Promise.all(
      missing.map(async (id) => {
        names.set(id, (await this.rules.fetch(id))?.name ?? null);
      }),
    );
    return alerts.map((a) => a.ruleName || (a.ruleId ? names.get(a.ruleId) : null)).filter((n): n is string => typeof n === 'string' && n.length > 0);
  }
}
