import type { Session } from '../code42/schemas.js';
import { fileEventRow } from './file-event-rows.js';
import { mapSessionToIncident, type Enrichment, type MappingOptions } from './incident-mapper.js';
import type { IncidentRequest } from './incident-request.js';

/** A create body that fits the budget, and how many file events it shows. */
export interface BudgetedIncident {
  incident: IncidentRequest;
  /** The JSON body exactly as it will be sent. */
  body: string;
  bytes: number;
  eventsShown: number;
  eventsTotal: number;
}

const bytesOf = (text: string): number => Buffer.byteLength(text, 'utf8');

/**
 * Maps the session and keeps the create body under `opts.maxBodyBytes`: each file event travels twice (in rawJSON,
 * as an escaped string, and as a grid row), so events beyond the budget are left out, first to last, and the
 * incident says how many are shown of how many. The count comes from each event's own size, then the real body
 * is measured; a session whose body is over the budget even without events is sent as it is (XSOAR decides).
 */
export function mapWithinBudget(session: Session, enrichment: Enrichment, opts: MappingOptions): BudgetedIncident {
  const make = (limit?: number): BudgetedIncident => {
    const incident = mapSessionToIncident(session, enrichment, opts, limit);
    const body = JSON.stringify(incident);
    const rows = incident.CustomFields.code42fileevents;
    return { incident, body, bytes: bytesOf(body), eventsShown: Array.isArray(rows) ? rows.length : 0, eventsTotal: enrichment.eventsTotal };
  };
  const full = make();
  if (full.bytes <= opts.maxBodyBytes || full.eventsShown === 0) return full;

  // Bytes each event adds: its escaped copy in rawJSON plus its grid row, each with a separating comma.
  const empty = make(0);
  let room = opts.maxBodyBytes - empty.bytes;
  let fits = 0;
  for (const event of enrichment.events.slice(0, full.eventsShown)) {
    const cost = bytesOf(JSON.stringify(JSON.stringify(event))) - 2 + bytesOf(JSON.stringify(fileEventRow(event))) + 2;
    if (cost > room) break;
    room -= cost;
    fits += 1;
  }
  let fitted = make(fits);
  // The estimate leaves out the longer `details`; step down until the measured body fits.
  while (fitted.bytes > opts.maxBodyBytes && fits > 0) {
    fits = Math.floor(fits * 0.95);
    fitted = make(fits);
  }
  return fitted.bytes <= opts.maxBodyBytes ? fitted : empty;
}
