/**
 * The XSOAR calls that keep an existing incident in step with its session: load, optimistic update
 * (`POST /incident` with `id` + `version`, reload-and-merge again on a "DB version error"), close,
 * reopen, war-room notes and their read-back, and the search for incidents closed in a time range.
 * See xsoar-api.md §2.4, §2.5, §2.7, §2.8 and §5.3.
 */
import { ForwarderError } from '../infra/errors.js';
import { XsoarRejectedError, XsoarResponseError, XsoarResponseTooLargeError } from './errors.js';
import type { XsoarClient } from './xsoar-client.js';

/** Incident status numbers (CommonServerPython `IncidentStatus`). */
export const INCIDENT_STATUS = { pending: 0, active: 1, done: 2, archive: 3 } as const;

/** Go's zero time: XSOAR's way of saying "not set". */
export const ZERO_TIME = '0001-01-01T00:00:00Z';

/**
 * An incident as `GET /incident/load/{id}` returns it. Only the fields read here are checked; every
 * other field is kept as it came, because an update sends the whole incident back (a server that
 * replaces rather than merges must not lose the analyst's fields).
 */
export interface LoadedIncident {
  id: string;
  version: number;
  status: number;
  severity: number;
  investigationId: string;
  CustomFields: Record<string, unknown>;
  rawJSON: string;
  /** When it was closed (RFC 3339), null when open. */
  closed: string | null;
  closeReason: string;
  closeNotes: string;
  closingUserId: string;
  /** Everything the server sent, untouched. */
  raw: Record<string, unknown>;
}

/** A "DB version error" that persisted through every reload-and-merge attempt. */
export class XsoarVersionConflictError extends ForwarderError {
  constructor(incidentId: string, attempts: number) {
    super('XSOAR_VERSION_CONFLICT', `XSOAR incident ${incidentId}: version conflict on ${attempts} attempts in a row (someone keeps editing it); will retry`);
  }
}

/** XSOAR refuses war-room entries in a closed investigation (HTTP 412, §2.7). */
export function isClosedInvestigation(err: unknown): boolean {
  return err instanceof XsoarRejectedError && (err.statusCode === 412 || /closed investigation|investigation is closed/i.test(err.detail));
}

/** XSOAR's optimistic-locking refusal: 400 (or 409) naming the version. */
export function isVersionConflict(err: unknown): boolean {
  return err instanceof XsoarRejectedError && (err.statusCode === 409 || (err.statusCode === 400 && /version/i.test(err.detail)));
}

function text(v: unknown): string {
  return typeof v === 'string' ? v : typeof v === 'number' ? String(v) : '';
}

function timeOrNull(v: unknown): string | null {
  if (typeof v !== 'string' || v === '' || v.startsWith('0001-01-01')) return null;
  return Number.isNaN(Date.parse(v)) ? null : v;
}

/** Validates the fields of an incident answer that this daemon reads; names the bad field. */
export function parseLoadedIncident(body: unknown, what: string): LoadedIncident {
  if (!body || typeof body !== 'object' || Array.isArray(body)) throw new XsoarResponseError(`XSOAR ${what}: answer is not an incident object`);
  const raw = body as Record<string, unknown>;
  const id = text(raw.id);
  if (id === '') throw new XsoarResponseError(`XSOAR ${what}: field id: missing`);
  if (typeof raw.version !== 'number' || !Number.isInteger(raw.version)) throw new XsoarResponseError(`XSOAR ${what} ${id}: field version: not an integer`);
  const customFields = raw.CustomFields ?? raw.customFields;
  return {
    id,
    version: raw.version,
    // Absent status/severity degrade to "active"/"unknown" rather than refusing the incident.
    status: typeof raw.status === 'number' ? raw.status : INCIDENT_STATUS.active,
    severity: typeof raw.severity === 'number' ? raw.severity : 0,
    investigationId: text(raw.investigationId) || id,
    CustomFields: customFields && typeof customFields === 'object' && !Array.isArray(customFields) ? (customFields as Record<string, unknown>) : {},
    rawJSON: text(raw.rawJSON),
    closed: timeOrNull(raw.closed),
    closeReason: text(raw.closeReason),
    closeNotes: text(raw.closeNotes),
    closingUserId: text(raw.closingUserId),
    raw,
  };
}

/** What a merge wants changed; null when the loaded incident already says it all. */
export type IncidentPatch = { fields: Record<string, unknown>; customFields: Record<string, unknown> } | null;

export interface UpdateOutcome {
  incident: LoadedIncident;
  /** POSTs sent (1 plus one per version conflict); 0 when nothing had to change. */
  writes: number;
}

export interface IncidentUpdatesOptions {
  /** Reload-and-merge rounds after a version conflict before giving up (the job retries later). @defaultValue 5 */
  maxConflictRetries?: number;
}

/** An incident closed in XSOAR, as the closed-incident search returns it. */
export interface ClosedIncident extends LoadedIncident {
  closed: string;
}

export class IncidentUpdates {
  private readonly maxConflictRetries: number;
  /** The server answered /entry/note as "mark an entry" (swagger reading): create notes with /entry. */
  private noteViaEntry = false;

  constructor(
    private readonly client: Pick<XsoarClient, 'send'>,
    opts: IncidentUpdatesOptions = {},
  ) {
    this.maxConflictRetries = opts.maxConflictRetries ?? 5;
  }

  /** GET /incident/load/{id}. */
  async load(id: string, signal?: AbortSignal): Promise<LoadedIncident> {
    const body = await this.client.send(`incident/load/${encodeURIComponent(id)}`, 'incident.load', { method: 'GET', signal });
    return parseLoadedIncident(body, 'incident load');
  }

  /**
   * Loads the incident, asks `merge` what to change, and writes the whole incident back with its
   * current version. On a version conflict (someone saved in between) it reloads and merges again,
   * at most `maxConflictRetries` more times. `merge` must be a pure function of the incident it is given.
   */
  async update(id: string, merge: (current: LoadedIncident) => IncidentPatch, opts: { signal?: AbortSignal; loaded?: LoadedIncident } = {}): Promise<UpdateOutcome> {
    const { signal } = opts;
    let writes = 0;
    for (let round = 0; ; round++) {
      const current = round === 0 && opts.loaded ? opts.loaded : await this.load(id, signal);
      const patch = merge(current);
      if (!patch) return { incident: current, writes };
      const body: Record<string, unknown> = {
        ...current.raw,
        ...patch.fields,
        id: current.id,
        version: current.version,
        CustomFields: { ...current.CustomFields, ...patch.customFields },
      };
      // One spelling only: a server that matches keys case-insensitively would see both.
      delete body.customFields;
      writes += 1;
      try {
        const answer = await this.client.send('incident', 'incident.update', { method: 'POST', body, signal });
        return { incident: answerOrReload(answer, current, patch), writes };
      } catch (err) {
        if (!isVersionConflict(err) || round >= this.maxConflictRetries) {
          if (isVersionConflict(err)) throw new XsoarVersionConflictError(id, round + 1);
          throw err;
        }
      }
    }
  }

  /** POST /incident/close with the current version (reloading once per version conflict, bounded). */
  async close(id: string, closeReason: string, closeNotes: string, signal?: AbortSignal): Promise<LoadedIncident> {
    for (let round = 0; ; round++) {
      const current = await this.load(id, signal);
      if (current.status === INCIDENT_STATUS.done) return current;
      try {
        const answer = await this.client.send('incident/close', 'incident.close', {
          method: 'POST',
          body: { id: current.id, version: current.version, closeReason, closeNotes },
          signal,
        });
        try {
          const closed = parseLoadedIncident(answer, 'incident close');
          if (closed.status === INCIDENT_STATUS.done && closed.closed) return closed;
        } catch {
          // An answer without the incident: read it back below.
        }
        return await this.load(id, signal);
      } catch (err) {
        if (!isVersionConflict(err) || round >= this.maxConflictRetries) {
          if (isVersionConflict(err)) throw new XsoarVersionConflictError(id, round + 1);
          throw err;
        }
      }
    }
  }

  /**
   * Adds a markdown note to the incident's war room: `POST /entry/note` as the XSOARmirroring
   * integration does; a server that reads that path as "mark an existing entry" (the swagger's
   * reading, §2.7) refuses it, and the note goes through `POST /entry` instead.
   */
  async addNote(investigationId: string, note: string, signal?: AbortSignal): Promise<void> {
    const body = { investigationId, data: note, markdown: true };
    if (!this.noteViaEntry) {
      try {
        await this.client.send('entry/note', 'entry.note', { method: 'POST', body, signal });
        return;
      } catch (err) {
        if (isClosedInvestigation(err) || !(err instanceof XsoarRejectedError) || (err.statusCode !== 400 && err.statusCode !== 404)) throw err;
        this.noteViaEntry = true;
      }
    }
    await this.client.send('entry', 'entry.create', { method: 'POST', body, signal });
  }

  /**
   * The war-room entries' text since `fromTime` (`POST /investigation/{id}`, as XSOARmirroring reads
   * them). Used after a crash to learn whether a note was already posted.
   */
  async entryTexts(investigationId: string, fromTime: number, signal?: AbortSignal): Promise<string[]> {
    const answer = await this.client.send(`investigation/${encodeURIComponent(investigationId)}`, 'investigation.entries', {
      method: 'POST',
      body: { pageSize: 200, fromTime: new Date(fromTime).toISOString() },
      signal,
    });
    const entries = (answer as { entries?: unknown } | null)?.entries;
    if (entries === null || entries === undefined) return [];
    if (!Array.isArray(entries)) throw new XsoarResponseError('XSOAR investigation entries: field entries: not a list');
    return entries.map((e) => {
      const contents = (e as { contents?: unknown } | null)?.contents;
      return typeof contents === 'string' ? contents : JSON.stringify(contents ?? '');
    });
  }

  /**
   * Incidents of `type` closed in [from, to], oldest close first, with the structured fields of the
   * swagger's IncidentFilter. Every hit is checked again here (status, close time): a server that
   * ignores a filter field must not make the daemon act on an open incident. Pages are small
   * (SEARCH_PAGE_SIZE) and one whose answer is over XSOAR_MAX_RESPONSE_SIZE is read again as two
   * half-size pages, down to one incident per page: a few incidents near XSOAR_MAX_BODY never make
   * the whole search fail. `skipped` counts the hits too large to read even alone.
   */
  async searchClosed(type: string, from: number, to: number, signal?: AbortSignal): Promise<ClosedIncident[]> {
    return (await this.searchClosedPaged(type, from, to, signal)).incidents;
  }

  async searchClosedPaged(type: string, from: number, to: number, signal?: AbortSignal): Promise<{ incidents: ClosedIncident[]; skipped: number }> {
    const out = new Map<string, ClosedIncident>();
    const filter = (page: number, size: number): Record<string, unknown> => ({
      type: [type],
      status: [INCIDENT_STATUS.done],
      fromClosedDate: new Date(from).toISOString(),
      toClosedDate: new Date(to).toISOString(),
      page,
      size,
      sort: [{ field: 'closed', asc: true }],
    });
    let skipped = 0;
    // Offsets into the result list; the page size shrinks on a too-large answer and stays small.
    let size = SEARCH_PAGE_SIZE;
    for (let offset = 0, rounds = 0; rounds < 100_000; rounds++) {
      let data: unknown[] | null;
      try {
        const answer = await this.client.send('incidents/search', 'incidents.search', { method: 'POST', body: { filter: filter(offset / size, size) }, signal });
        const raw = (answer as { data?: unknown } | null)?.data;
        if (raw !== null && raw !== undefined && !Array.isArray(raw)) throw new XsoarResponseError('XSOAR search answered without a data list');
        data = (raw as unknown[] | null | undefined) ?? null;
      } catch (err) {
        if (!(err instanceof XsoarResponseTooLargeError)) throw err;
        if (size > 1) {
          size /= 2;
          continue;
        }
        // One incident alone is over the cap: it cannot be read here; the next one can.
        skipped += 1;
        offset += 1;
        continue;
      }
      if (!data) break;
      for (const item of data) {
        let inc: LoadedIncident;
        try {
          inc = parseLoadedIncident(item, 'closed-incident search');
        } catch {
          continue;
        }
        const at = inc.closed ? Date.parse(inc.closed) : NaN;
        const rawType = text(inc.raw.type);
        if (inc.status !== INCIDENT_STATUS.done || !(at >= from && at <= to) || (rawType !== '' && rawType !== type)) continue;
        out.set(inc.id, inc as ClosedIncident);
      }
      if (data.length < size) break;
      offset += size;
    }
    return { incidents: [...out.values()].sort((a, b) => Date.parse(a.closed) - Date.parse(b.closed)), skipped };
  }
}

/** Incidents per page of the closed-incident search: a power of two, so halving keeps pages aligned. */
export const SEARCH_PAGE_SIZE = 64;

/** The incident after a write: the server's answer when it is one, else the loaded one with the patch. */
function answerOrReload(answer: unknown, current: LoadedIncident, patch: NonNullable<IncidentPatch>): LoadedIncident {
  try {
    return parseLoadedIncident(answer, 'incident update');
  } catch {
    return { ...current, CustomFields: { ...current.CustomFields, ...patch.customFields } };
  }
}
