/**
 * Shapes the real Incydr API may give a session, an actor or a sessions page that differ from the tidy
 * wire types, and that a client must accept (the SDK's models mark the fields Optional; the API says
 * clients must tolerate new values). The simulator keeps each session in its tidy form, which its own
 * filters read, and serves it in the shapes asked for; so a test (or the tenant generator) can ask for
 * any variant without the simulator's filtering changing.
 *
 * Every session shape here leaves what the stock integration derives unchanged (state, severity, rule
 * names, occurred time, file event times), so a session served in it must become the same incident.
 */
import type { FileEventV2, WireActor, WireSession } from './tenant-generator.js';

export const SESSION_SHAPES = [
  /** States carry only `stateV2` (`state` is deprecated in the SDK). */
  'state-v2-only',
  /** An extra state entry whose `sourceTimestamp` is null, in another state, comes first (it ranks below timed ones). */
  'untimed-state',
  /** A second entry with the same time as the current one follows it, with another state (the first wins). */
  'same-time-states',
  /** An extra triggered alert whose `ruleId` (and `alertId`) is null. */
  'null-rule-id',
  /** `beginTime` as a string of digits. */
  'numeric-string-begin',
  /** File events' `@timestamp` as epoch milliseconds (the tidy form holds the same instant as ISO with ms). */
  'epoch-ms-event-time',
] as const;
export type SessionShape = (typeof SESSION_SHAPES)[number];

export const ACTOR_SHAPES = ['name-null', 'name-missing'] as const;
export type ActorShape = (typeof ACTOR_SHAPES)[number];

/** How a sessions page carries `totalCount`: as documented, left out, or null. */
export type TotalCountMode = 'present' | 'omitted' | 'null';

/**
 * How the `state` query parameter filters: on the current state (the reading the daemon's own filter
 * follows) or on any state in the session's history (the SDK's words, "items that include these
 * matching states", allow it; then sessions in other current states come back too).
 */
export type StateFilterMode = 'latest' | 'any-in-history';

type Json = Record<string, unknown>;

/** The session as served in `shapes` (a new object; `wire` is not changed). */
export function shapeSession(wire: WireSession, shapes: readonly SessionShape[]): Json {
  const out = structuredClone(wire) as unknown as Json;
  const states = out.states as Json[];
  // Entries added by other shapes lose their `state` too: `state-v2-only` goes last.
  const ordered = [...shapes.filter((x) => x !== 'state-v2-only'), ...shapes.filter((x) => x === 'state-v2-only')];
  for (const shape of ordered) {
    switch (shape) {
      case 'state-v2-only':
        for (const s of states) {
          s.stateV2 = s.stateV2 ?? s.state;
          delete s.state;
        }
        break;
      case 'untimed-state': {
        // Another state than the current one, so a client that ranked it first would get the state wrong.
        const current = stateName(pickLatest(states));
        const other = current === 'IN_PROGRESS' ? 'CLOSED' : 'IN_PROGRESS';
        states.unshift({ state: other, stateV2: other, sourceTimestamp: null, userId: null });
        break;
      }
      case 'same-time-states': {
        const latest = pickLatest(states);
        if (!latest) break;
        const current = stateName(latest);
        const other = current === 'CLOSED' ? 'IN_PROGRESS' : 'CLOSED';
        states.splice(states.indexOf(latest) + 1, 0, { ...latest, ...('state' in latest ? { state: other } : {}), stateV2: other });
        break;
      }
      case 'null-rule-id':
        (out.triggeredAlerts as Json[]).push({ alertId: null, ruleId: null, lessonId: null });
        break;
      case 'numeric-string-begin':
        out.beginTime = String(wire.beginTime);
        break;
      case 'epoch-ms-event-time':
        break; // events only
    }
  }
  return out;
}

/** The session's file events as served in `shapes`. */
export function shapeEvents(events: readonly FileEventV2[], shapes: readonly SessionShape[]): unknown[] {
  if (!shapes.includes('epoch-ms-event-time')) return events as unknown[];
  return events.map((e) => ({ ...e, '@timestamp': Date.parse(e['@timestamp']) }));
}

/** Makes the tidy events of a session hold times that survive the trip through epoch ms (ISO with ms). */
export function millisecondEventTimes(events: FileEventV2[]): void {
  for (const e of events) e['@timestamp'] = new Date(Date.parse(e['@timestamp'])).toISOString();
}

/** The actor as served in `shape`. */
export function shapeActor(actor: WireActor, shape: ActorShape | undefined): Json {
  const out = structuredClone(actor) as unknown as Json;
  if (shape === 'name-null') out.name = null;
  if (shape === 'name-missing') delete out.name;
  return out;
}

function stateName(entry: Json | undefined): string {
  return String(entry?.state ?? entry?.stateV2 ?? '');
}

/** The stock integration's pick (Python `max` by time: first of equals; here a null time ranks lowest). */
function pickLatest(states: Json[]): Json | undefined {
  let best: Json | undefined;
  let bestKey = Number.NEGATIVE_INFINITY;
  for (const s of states) {
    const key = typeof s.sourceTimestamp === 'number' ? s.sourceTimestamp : Number.MIN_SAFE_INTEGER;
    if (!best || key > bestKey) {
      best = s;
      bestKey = key;
    }
  }
  return best;
}
