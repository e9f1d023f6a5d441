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

/**
 * Code42 text (user ids, rule names, states) as literal markdown in a war-room note: every character
 * markdown gives a meaning (emphasis, links, images, HTML, tables, headings, code) is backslash-escaped,
 * and line breaks become spaces, so a rule named `[click](javascript:…)` or `<img src=x>` shows as written.
 */
export function escapeMarkdown(text: string): string {
  // Plain words (states such as OPEN_NEW_DATA, most ids) are left as they are; intraword `_` is no emphasis.
  if (/^[\w.@:/ -]*$/.test(text) && !/(^|[^\w])_|_($|[^\w])/.test(text)) return text;
  return text.replace(/[\r\n]+/g, ' ').replace(/[\\`*_{}[\]<>|~#&!]/g, (c) => `\\${c}`);
}

/** "3 new file events; severity HIGH → CRITICAL; new rule: USB exfiltration; state OPEN_NEW_DATA" */
export function describeUpdate(s: UpdateSummary, text: (t: string) => string = (t) => t): string {
  const parts: string[] = [];
  if (s.newEvents > 0) parts.push(`${s.newEvents} new file event${s.newEvents === 1 ? '' : 's'}`);
  if (s.severity) parts.push(`severity ${severityName(s.severity.from)} → ${severityName(s.severity.to)}`);
  if (s.newRules.length > 0) parts.push(`new rule${s.newRules.length === 1 ? '' : 's'}: ${s.newRules.map(text).join(', ')}`);
  if (s.state) parts.push(`state ${text(s.state)}${s.closedBy ? ` (closed in Incydr by ${text(s.closedBy.user)} at ${new Date(s.closedBy.at).toISOString()})` : ''}`);
  if (s.reopened) parts.push('incident reopened');
  return parts.join('; ');
}

/** The marker that identifies the note of one change of one session. */
export function noteMarker(sessionId: string, seq: number): string {
  return `[code42-forwarder session ${sessionId} update ${seq}]`;
}

export function updateNote(sessionId: string, seq: number, summary: UpdateSummary, incidentClosed: boolean): string {
  const head = `Code42 session update: ${describeUpdate(summary, escapeMarkdown)}.`;
  const closed = incidentClosed && !summary.reopened ? '\n\nThe incident is closed; it was left closed.' : '';
  return `${head}${closed}\n\n${noteMarker(sessionId, seq)}`;
}

/** How the daemon's close notes begin (text for analysts: the daemon knows its own closes by its sync record). */
export const CLOSED_IN_INCYDR_PREFIX = 'Closed in Code42 Incydr by ';

/** The close notes of an incident closed because its session was closed in Incydr (markdown-escaped Code42 text). */
export function closedInIncydrNotes(state: string, user: string, at: number): string {
  return `${CLOSED_IN_INCYDR_PREFIX}${escapeMarkdown(user)} at ${new Date(at).toISOString()} (session state ${escapeMarkdown(state)}).`;
}

/** The session note carrying an XSOAR close back to Incydr. */
export function closedInXsoarNote(incident: { id: string; closeReason: string; closeNotes: string; closingUserId: string; closed: string }): string {
  const who = incident.closingUserId ? ` by ${incident.closingUserId}` : '';
  const reason = incident.closeReason ? ` as "${incident.closeReason}"` : '';
  const notes = incident.closeNotes.trim() ? `: ${incident.closeNotes.trim()}` : '.';
  return `Closed in Cortex XSOAR (incident ${incident.id})${reason}${who} at ${incident.closed}${notes}`;
}

/**
 * The session note of an XSOAR close that was not written as a state: what the close was, and why the
 * session keeps its state (`why` is a sentence without its final stop).
 */
export function closeNotCarriedNote(incident: Parameters<typeof closedInXsoarNote>[0], why: string): string {
  const close = closedInXsoarNote(incident);
  return `${close}${/[.!?]$/.test(close) ? '' : '.'}\n\n${why.charAt(0).toUpperCase()}${why.slice(1)}.`;
}

/** The session note of an XSOAR close that replaced a close made in Incydr before it. */
export function closeReplacingNote(incident: Parameters<typeof closedInXsoarNote>[0], replaced: { state: string; user: string | null; at: number }): string {
  const close = closedInXsoarNote(incident);
  const by = replaced.user ? ` by ${replaced.user}` : '';
  return `${close}${/[.!?]$/.test(close) ? '' : '.'}\n\nThis later close replaces the state ${replaced.state} set${by} at ${new Date(replaced.at).toISOString()}.`;
}
