/**
 * What the incident for a simulator session must look like, computed independently of src/ from the
 * simulator's own data (xsoar-api.md §7.3–§7.5: the stock pack's fetch code, classifier and mapper).
 */
import type { FileEventV2, WireActor, WireRule, WireSession } from '../sims/code42/index.js';

const NAMES = ['NO RISK', 'LOW', 'MODERATE', 'HIGH', 'CRITICAL'];

export function pyIso(ms: number): string {
  const d = new Date(ms);
  const pad = (n: number, w = 2): string => String(n).padStart(w, '0');
  const base = `${d.getUTCFullYear()}-${pad(d.getUTCMonth() + 1)}-${pad(d.getUTCDate())}T${pad(d.getUTCHours())}:${pad(d.getUTCMinutes())}:${pad(d.getUTCSeconds())}`;
  const micro = d.getUTCMilliseconds() * 1000;
  return micro === 0 ? `${base}+00:00` : `${base}.${pad(micro, 6)}+00:00`;
}

export interface ExpectedIncident {
  name: string;
  severity: number;
  occurred: string;
  riskSeverity: string;
  state: string;
  actor: string;
  ruleNames: string;
  summary: string;
  alertUrl: string;
  eventCount: number;
}

export function expectedIncident(
  session: WireSession,
  events: FileEventV2[],
  actors: ReadonlyMap<string, WireActor>,
  liveRules: ReadonlyMap<string, WireRule>,
  consoleUrl: string,
  includeFiles = true,
): ExpectedIncident {
  const severity = Math.max(0, ...session.scores.map((s) => s.severity ?? 0));
  // Python `max(states, key=sourceTimestamp)`: the first of equal times wins (a null time ranks lowest here).
  let latest: (typeof session.states)[number] | undefined;
  for (const s of session.states) if (!latest || (s.sourceTimestamp ?? -Infinity) > (latest.sourceTimestamp ?? -Infinity)) latest = s;
  const state = latest?.state ?? latest?.stateV2 ?? '';
  const actor = session.actorName || actors.get(session.actorId)?.name || session.actorId;
  // One name per triggered alert, in order; deleted rules and null rule ids name nothing.
  const ruleNames = session.triggeredAlerts
    .map((a) => a.ruleName ?? (a.ruleId ? liveRules.get(a.ruleId)?.name : undefined))
    .filter((n): n is string => !!n)
    .join(', ');
  const summary = includeFiles ? `${events.length} ${session.exfiltrationSummary}` : session.exfiltrationSummary;
  return {
    name: `Code42 - ${summary}`,
    severity,
    occurred: pyIso(session.beginTime),
    riskSeverity: NAMES[severity] as string,
    state,
    actor,
    ruleNames,
    summary,
    alertUrl: `${consoleUrl}/app/#/alerts/review-alerts/${session.sessionId}`,
    eventCount: events.length,
  };
}
