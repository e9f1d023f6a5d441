import type { EventsKeep } from '../code42/events-stream.js';
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

/** From this many events on, the body is estimated before it is built. */
const ESTIMATE_FROM_EVENTS = 100;

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
  const shownAtMost = opts.includeFiles ? Math.min(opts.maxFileEvents, enrichment.events.length) : 0;
  // A create with many events is several MB: its size is estimated from each event first, so that only the body
  // that fits is built (a body over the budget built and thrown away would double the memory of a large create).
  if (shownAtMost < ESTIMATE_FROM_EVENTS) {
    const full = make();
    if (full.bytes <= opts.maxBodyBytes || full.eventsShown === 0) return full;
  }
  const empty = make(0);
  let room = opts.maxBodyBytes - empty.bytes;
  let fits = 0;
  for (const event of enrichment.events.slice(0, shownAtMost)) {
    // Bytes each event adds: its escaped copy in rawJSON plus its grid row, each with a separating comma.
    const cost = bytesOf(JSON.stringify(JSON.stringify(event))) - 2 + bytesOf(JSON.stringify(fileEventRow(event))) + 2;
    if (cost > room) break;
    room -= cost;
    fits += 1;
  }
  if (fits === 0) return empty;
  let fitted = make(fits);
  // The estimate leaves out the longer `details`; step down until the measured body fits.
  while (fitted.bytes > opts.maxBodyBytes && fits > 0) {
    fits = Math.floor(fits * 0.95);
    fitted = make(fits);
  }
  return fitted.bytes <= opts.maxBodyBytes ? fitted : empty;
}

/**
 * How many file events are worth keeping of a session for its incident: MAX_FILE_EVENTS, and no more JSON than half
 * the body budget (each event travels at least twice in a create, in rawJSON and as a grid row, so events past that
 * could never be shown).
 */
export function eventsWorthKeeping(opts: Pick<MappingOptions, 'maxFileEvents' | 'maxBodyBytes'>): EventsKeep {
  return { maxEvents: opts.maxFileEvents, maxBytes: Math.floor(opts.maxBodyBytes / 2) };
}
