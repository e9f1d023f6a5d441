/**
 * The words the sync writes: the war-room note of an update, the notes of a close carried across.
 * Each war-room note ends with a marker naming the session and the change's seq, so that after a
 * crash the daemon can tell whether the note already reached XSOAR.
 */
import { severityName } from '../code42/vocabulary.js';

export interface UpdateSummary {
  newEvents: number;
  severity?: { from: number; to: number };
  newRules: string[];
  /** The new Incydr state, when it changed. */
  state?: string;
  /** Set when the state change was an analyst closing the session in Incydr. */
  closedBy?: { user: string; at: number };
  reopened?: boolean;
}

/** True when the summary has something an analyst would want to read. */
export function hasNews(s: UpdateSummary): boolean {
  return s.newEvents > 0 || s.severity !== undefined || s.newRules.length > 0 || s.state !== undefined;
}

/** "3 new file events; severity HIGH → CRITICAL; new rule: USB exfiltration; state OPEN_NEW_DATA" */
export function describeUpdate(s: UpdateSummary): string {
  const parts: string[] = [];
  if (s.newEvents > 0) parts.push(`${s.newEvents} new file event${s.newEvents === 1 ? '' : 's'}`);
  if (s.severity) parts.push(`severity ${severityName(s.severity.from)} → ${severityName(s.severity.to)}`);
  if (s.newRules.length > 0) parts.push(`new rule${s.newRules.length === 1 ? '' : 's'}: ${s.newRules.join(', ')}`);
  if (s.state) parts.push(`state ${s.state}${s.closedBy ? ` (closed in Incydr by ${s.closedBy.user} at ${new Date(s.closedBy.at).toISOString()})` : ''}`);
  if (s.reopened) parts.push('incident reopened');
  return parts.join('; ');
}

/** The marker that identifies the note of one change of one session. */
export function noteMarker(sessionId: string, seq: number): string {
  return `[code42-forwarder session ${sessionId} update ${seq}]`;
}

export function updateNote(sessionId: string, seq: number, summary: UpdateSummary, incidentClosed: boolean): string {
  const head = `Code42 session update: ${describeUpdate(summary)}.`;
  const closed = incidentClosed && !summary.reopened ? '\n\nThe incident is closed; it was left closed.' : '';
  return `${head}${closed}\n\n${noteMarker(sessionId, seq)}`;
}

/** How the daemon's own close notes begin: an incident closed with them was closed by the daemon. */
export const CLOSED_IN_INCYDR_PREFIX = 'Closed in Code42 Incydr by ';

/** The close notes of an incident closed because its session was closed in Incydr. */
export function closedInIncydrNotes(state: string, user: string, at: number): string {
  return `${CLOSED_IN_INCYDR_PREFIX}${user} at ${new Date(at).toISOString()} (session state ${state}).`;
}

/** The session note carrying an XSOAR close back to Incydr. */
export function closedInXsoarNote(incident: { id: string; closeReason: string; closeNotes: string; closingUserId: string; closed: string }): string {
  const who = incident.closingUserId ? ` by ${incident.closingUserId}` : '';
  const reason = incident.closeReason ? ` as "${incident.closeReason}"` : '';
  const notes = incident.closeNotes.trim() ? `: ${incident.closeNotes.trim()}` : '.';
  return `Closed in Cortex XSOAR (incident ${incident.id})${reason}${who} at ${incident.closed}${notes}`;
}
