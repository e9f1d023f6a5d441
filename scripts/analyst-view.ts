/**
 * One forwarded incident the way an analyst meets it in XSOAR's Code42 Security Alert layout: name,
 * severity, the `code42*` fields, and the first rows of the file-events grid. Used by the demo.
 */
import type { StoredIncident } from '../test/sims/xsoar/index.js';

const GRID_COLUMNS = ['eventtimestamp', 'eventtype', 'filename', 'exposure', 'destinationname'] as const;
const CELL_WIDTH = 28;

function cell(value: unknown): string {
  const text = value === undefined || value === null ? '' : String(value);
  return text.length > CELL_WIDTH ? `${text.slice(0, CELL_WIDTH - 1)}…` : text;
}

/** The incident with the most file events among those of the highest severity: the richest to show. */
export function pickIncident(incidents: readonly StoredIncident[]): StoredIncident | undefined {
  const events = (i: StoredIncident): number => (Array.isArray(i.CustomFields.code42fileevents) ? i.CustomFields.code42fileevents.length : 0);
  return [...incidents].sort((a, b) => b.severity - a.severity || events(b) - events(a) || a.id.localeCompare(b.id))[0];
}

export function analystView(incident: StoredIncident, severityName: (n: number) => string, rows = 3): string[] {
  const cf = incident.CustomFields;
  const lines = [
    `One incident as an analyst sees it (XSOAR incident ${incident.id}, type ${incident.type ?? '?'})`,
    `  name        ${incident.name}`,
    `  severity    ${incident.severity} (${severityName(incident.severity)})`,
  ];
  const fields = Object.keys(cf)
    .filter((k) => k.startsWith('code42') && k !== 'code42fileevents')
    .sort();
  const width = Math.max(...fields.map((k) => k.length));
  for (const key of fields) lines.push(`  ${key.padEnd(width)}  ${String(cf[key])}`);
  const grid = Array.isArray(cf.code42fileevents) ? (cf.code42fileevents as Array<Record<string, unknown>>) : [];
  lines.push(`  code42fileevents (${grid.length} row${grid.length === 1 ? '' : 's'}${grid.length > rows ? `, first ${rows}` : ''})`);
  if (grid.length > 0) {
    lines.push(`    ${GRID_COLUMNS.map((c) => c.padEnd(CELL_WIDTH)).join(' ').trimEnd()}`);
    for (const row of grid.slice(0, rows)) lines.push(`    ${GRID_COLUMNS.map((c) => cell(row[c]).padEnd(CELL_WIDTH)).join(' ').trimEnd()}`);
  }
  return lines;
}
