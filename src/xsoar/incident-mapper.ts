import { currentSeverity, currentState, type FileEvent, type Session } from '../code42/schemas.js';
import { ForwarderError, type ErrorFacts } from '../infra/errors.js';
import { severityName } from '../code42/vocabulary.js';
import { fileEventRow } from './file-event-rows.js';
import type { IncidentRequest } from './incident-request.js';
import { SESSION_LABEL } from './xsoar-client.js';

/** What the worker learned about a session beyond the session itself. */
export interface Enrichment {
  actorName: string | null;
  /** Names of the rules that still exist, in the order the session lists them. */
  ruleNames: string[];
  /** File events (all that Code42 returned). */
  events: FileEvent[];
  /** Code42's count of the session's events (may exceed `events.length`). */
  eventsTotal: number;
}

export interface MappingOptions {
  incidentType: string;
  consoleUrl: string;
  createInvestigation: boolean;
  playbookId: string | null;
  includeFiles: boolean;
  maxFileEvents: number;
  /** `sourceBrand` of the incidents (the stock "Close Related" job searches `sourceBrand:Code42`). */
  sourceBrand: string;
  /** Largest create body in bytes: file events beyond it are left out and counted. */
  maxBodyBytes: number;
}

/** Thrown when a session lacks what an incident needs. */
export class MappingError extends ForwarderError {
  constructor(
    readonly field: string,
    message: string,
  ) {
    super('MAPPING', message);
  }

  override get facts(): ErrorFacts {
    return { nature: 'permanent', failure: 'invalid_input' };
  }
}

/**
 * The time format of the stock integration's `beginTimeIso` (Python `isoformat()` of a UTC datetime):
 * `2024-09-11T19:26:00.680000+00:00`, or without the fraction when it is zero. It is RFC 3339.
 */
export function pythonIsoFormat(epochMs: number): string {
  const iso = new Date(epochMs).toISOString(); // 2024-09-11T19:26:00.680Z
  const [seconds, millis] = iso.slice(0, -1).split('.') as [string, string];
  return millis === '000' ? `${seconds}+00:00` : `${seconds}.${millis}000+00:00`;
}

/**
 * Builds the incident the stock Code42 content pack would have made for this session: its fetch code
 * (name, occurred, rawJSON with the added keys) and its classifier and mapper (type, severity,
 * `code42*` fields) in one step. See xsoar-api.md §7.3–§7.5.
 */
export function mapSessionToIncident(session: Session, enrichment: Enrichment, opts: MappingOptions, budgetLimit?: number): IncidentRequest {
  const sessionId = session.sessionId;
  // Without a state history the state is left empty (such a session passes no state filter; replay may send it).
  const state = currentState(session) ?? '';
  const begin = new Date(session.beginTime);
  if (Number.isNaN(begin.getTime())) throw new MappingError('beginTime', `session ${sessionId}: field beginTime: not a valid time`);

  const severity = currentSeverity(session);
  const riskSeverity = severityName(severity);
  const beginTimeIso = pythonIsoFormat(session.beginTime);
  const alertUrl = `${opts.consoleUrl}/app/#/alerts/review-alerts/${encodeURIComponent(sessionId)}`;
  const ruleNames = enrichment.ruleNames.join(', ');
  const actor = enrichment.actorName ?? session.actorName ?? session.actorId ?? '';
  const baseSummary = session.exfiltrationSummary?.trim() || `alert session ${sessionId}`;
  // With files, the stock integration prefixes the summary with the number of events.
  const summary = opts.includeFiles ? `${enrichment.eventsTotal} ${baseSummary}` : baseSummary;

  const limit = Math.min(opts.maxFileEvents, budgetLimit ?? Number.POSITIVE_INFINITY);
  const shown = opts.includeFiles ? enrichment.events.slice(0, limit) : [];
  const omitted = opts.includeFiles ? Math.max(0, enrichment.eventsTotal - shown.length) : 0;
  const trimmedForSize = budgetLimit !== undefined && budgetLimit < Math.min(opts.maxFileEvents, enrichment.events.length);

  const raw: Record<string, unknown> = {
    ...session,
    exfiltrationSummary: summary,
    riskSeverity,
    state,
    actor,
    rule_names: ruleNames,
    beginTimeIso,
    alertUrl,
  };
  const customFields: IncidentRequest['CustomFields'] = {
    code42alertid: sessionId,
    code42alertname: summary,
    code42alertriskseveritysummary: summary,
    code42alertdescription: ruleNames,
    code42alertstate: state,
    code42alerttimestamp: beginTimeIso,
    code42severity: riskSeverity,
    code42username: actor,
    code42alerturl: alertUrl,
  };
  if (opts.includeFiles) {
    raw.fileevents = shown;
    raw.fileevents_version = '2';
    raw.fileevents_total = enrichment.eventsTotal;
    raw.fileevents_omitted = omitted;
    raw.fileevents_shown = shown.length;
    if (trimmedForSize) raw.fileevents_trimmed_for = `XSOAR_MAX_BODY ${opts.maxBodyBytes} bytes`;
    customFields.code42fileevents = shown.map(fileEventRow);
    customFields.code42fileeventsversion = '2';
  }

  const details = [
    `Code42 alert session ${sessionId} (${riskSeverity}, ${state}) by ${actor || 'unknown actor'}.`,
    ruleNames ? `Rules: ${ruleNames}.` : 'Rules: none with a name (deleted or unnamed).',
    opts.includeFiles
      ? omitted > 0
        ? `File events: ${shown.length} of ${enrichment.eventsTotal} shown; ${omitted} more in Code42 (${alertUrl})` +
          (trimmedForSize ? `; the rest would exceed the create size limit of ${opts.maxBodyBytes} bytes.` : '.')
        : `File events: ${enrichment.eventsTotal}.`
      : '',
  ]
    .filter((s) => s.length > 0)
    .join(' ');

  const incident: IncidentRequest = {
    name: `Code42 - ${summary}`,
    type: opts.incidentType,
    severity,
    occurred: beginTimeIso,
    details,
    rawJSON: JSON.stringify(raw),
    labels: [{ type: SESSION_LABEL, value: sessionId }],
    CustomFields: customFields,
    dbotMirrorId: sessionId,
    sourceBrand: opts.sourceBrand,
    createInvestigation: opts.createInvestigation,
  };
  if (opts.playbookId) incident.playbookId = opts.playbookId;
  return incident;
}
