/**
 * The incident lifecycle part of the XSOAR simulator: updates of an existing incident through `POST /incident`
 * with `id` + `version` (optimistic locking: a stale version answers 400 "DB version error"), `POST /incident/close`,
 * war-room entries (`POST /entry/note`, `POST /entry`, read back with `POST /investigation/{id}`), and an analyst
 * working in the UI (closing, reopening, editing by hand).
 *
 * Readings the evidence leaves open are modes (xsoar-api.md §2.1, §2.7):
 * - `updateSemantics`: `replace` (the body replaces the incident: what it omits is lost; pessimistic, default) or
 *   `merge` (only the fields sent change).
 * - `entryNote`: `create` (XSOARmirroring: `/entry/note` creates a note, default) or `mark-only` (the swagger:
 *   it only marks an existing entry, so a body without an entry `id` answers 400).
 * - `entriesOnClosed`: `accept` (default) or `reject` (412 for entries in a closed investigation, as `/entry` documents).
 * - `ignoreClosedDateFilter`: search ignores `fromClosedDate`/`toClosedDate` (a server that does not honour them).
 */
import type { StoredIncident } from './xsoar-simulator.js';

export interface LifecycleModes {
  updateSemantics?: 'replace' | 'merge';
  entryNote?: 'create' | 'mark-only';
  entriesOnClosed?: 'accept' | 'reject';
  ignoreClosedDateFilter?: boolean;
}

export interface WarRoomEntry {
  id: string;
  investigationId: string;
  contents: string;
  note: boolean;
  created: string;
  user: string;
}

/** Lifecycle fields kept beside a stored incident. */
export interface LifecycleFields {
  closed?: string;
  closeReason?: string;
  closeNotes?: string;
  closingUserId?: string;
  phase?: string;
}

export type LifecycleAnswer = { status: number; body: unknown };

const ZERO_TIME = '0001-01-01T00:00:00Z';

function err(status: number, id: string, title: string, detail: string, error: string): LifecycleAnswer {
  return { status, body: { id, status, title, detail, error, encrypted: false, multires: null } };
}

function isObject(v: unknown): v is Record<string, unknown> {
  return v !== null && typeof v === 'object' && !Array.isArray(v);
}

export class IncidentLifecycle {
  readonly modes: Required<LifecycleModes>;
  private readonly entries = new Map<string, WarRoomEntry[]>();
  private nextEntry = 1;
  private conflicts = 0;
  counters = { updates: 0, conflicts: 0, closes: 0, notes: 0, entryReads: 0 };

  constructor(
    modes: LifecycleModes,
    private readonly find: (id: string) => StoredIncident | undefined,
    private readonly wire: (inc: StoredIncident) => Record<string, unknown>,
  ) {
    this.modes = {
      updateSemantics: modes.updateSemantics ?? 'replace',
      entryNote: modes.entryNote ?? 'create',
      entriesOnClosed: modes.entriesOnClosed ?? 'accept',
      ignoreClosedDateFilter: modes.ignoreClosedDateFilter ?? false,
    };
  }

  reset(): void {
    this.entries.clear();
    this.nextEntry = 1;
    this.conflicts = 0;
    this.counters = { updates: 0, conflicts: 0, closes: 0, notes: 0, entryReads: 0 };
  }

  /** The next `count` updates or closes meet someone else's save first: the version moves and they answer 400. */
  conflictNext(count: number): void {
    this.conflicts = Math.max(0, Math.floor(count));
  }

  // ------------------------------------------------------------------------------------------------------------
  // Analyst in the UI

  closeByHand(id: string, closeReason: string, closeNotes = '', user = 'analyst'): void {
    const inc = this.must(id);
    this.close(inc, closeReason, closeNotes, user);
  }

  reopenByHand(id: string): void {
    this.reopen(this.must(id));
  }

  /** An analyst's own edit: owner, phase, severity or custom fields. Saves a new version. */
  editByHand(id: string, patch: { owner?: string; phase?: string; severity?: number; CustomFields?: Record<string, unknown> }): void {
    const inc = this.must(id);
    if (patch.owner !== undefined) inc.owner = patch.owner;
    if (patch.phase !== undefined) lc(inc).phase = patch.phase;
    if (patch.severity !== undefined) inc.severity = patch.severity;
    if (patch.CustomFields) Object.assign(inc.CustomFields, structuredClone(patch.CustomFields));
    this.save(inc);
  }

  entriesOf(investigationId: string): WarRoomEntry[] {
    return structuredClone(this.entries.get(investigationId) ?? []);
  }

  // ------------------------------------------------------------------------------------------------------------
  // HTTP

  /** `POST /incident` carrying an `id`: an update. */
  update(body: Record<string, unknown>): LifecycleAnswer {
    const id = String(body.id);
    const inc = this.find(id);
    if (!inc) return err(400, 'bad_request', 'Bad request', `Could not find incident [${id}]`, `incident ${id} not found`);
    const conflict = this.versionCheck(inc, body.version);
    if (conflict) return conflict;
    this.counters.updates += 1;
    const semantics = this.modes.updateSemantics;
    const has = (k: string): boolean => Object.keys(body).some((b) => b.toLowerCase() === k.toLowerCase());
    const get = (k: string): unknown => Object.entries(body).find(([b]) => b.toLowerCase() === k.toLowerCase())?.[1];
    const cf = get('CustomFields');
    if (semantics === 'replace') {
      inc.CustomFields = isObject(cf) ? structuredClone(cf) : {};
      inc.owner = typeof get('owner') === 'string' ? (get('owner') as string) : '';
      lc(inc).phase = typeof get('phase') === 'string' ? (get('phase') as string) : '';
      inc.details = typeof get('details') === 'string' ? (get('details') as string) : '';
    } else {
      if (isObject(cf)) Object.assign(inc.CustomFields, structuredClone(cf));
      if (has('owner') && typeof get('owner') === 'string') inc.owner = get('owner') as string;
      if (has('phase') && typeof get('phase') === 'string') lc(inc).phase = get('phase') as string;
      if (has('details') && typeof get('details') === 'string') inc.details = get('details') as string;
    }
    const name = get('name');
    if (typeof name === 'string' && name.trim() !== '') inc.name = name;
    const rawJSON = get('rawJSON');
    if (typeof rawJSON === 'string') inc.rawJSON = rawJSON;
    else if (semantics === 'replace') inc.rawJSON = '';
    const severity = get('severity');
    if (typeof severity === 'number') inc.severity = severity;
    else if (semantics === 'replace') inc.severity = 0;
    const labels = get('labels');
    if (Array.isArray(labels)) inc.labels = labels.filter(isObject).map((l) => ({ type: String(l.type ?? ''), value: String(l.value ?? '') }));
    // A status back to active with a zero close time is a reopen (this reading of the API is itself uncertain).
    const status = get('status');
    if (typeof status === 'number' && status !== 2 && inc.status === 2) this.reopen(inc, false);
    this.save(inc);
    return { status: 200, body: this.wire(inc) };
  }

  /** `POST /incident/close` `{id, version, closeReason, closeNotes}`. */
  closeRequest(body: unknown): LifecycleAnswer {
    if (!isObject(body) || (typeof body.id !== 'string' && typeof body.id !== 'number')) {
      return err(400, 'bad_request', 'Bad request', 'id is required', 'incident id is required');
    }
    const inc = this.find(String(body.id));
    if (!inc) return err(400, 'bad_request', 'Bad request', `Could not find incident [${String(body.id)}]`, 'incident not found');
    const conflict = this.versionCheck(inc, body.version);
    if (conflict) return conflict;
    this.counters.closes += 1;
    this.close(inc, typeof body.closeReason === 'string' ? body.closeReason : '', typeof body.closeNotes === 'string' ? body.closeNotes : '', 'api-key');
    return { status: 200, body: this.wire(inc) };
  }

  /** `POST /entry/note` (mode-dependent) or `POST /entry`. */
  entry(body: unknown, path: 'note' | 'entry'): LifecycleAnswer {
    if (!isObject(body) || typeof body.investigationId !== 'string' || body.investigationId === '') {
      return err(400, 'bad_request', 'Bad request', 'investigationId is required', 'updateEntry.investigationId is required');
    }
    if (path === 'note' && this.modes.entryNote === 'mark-only') {
      const target = typeof body.id === 'string' ? (this.entries.get(body.investigationId) ?? []).find((e) => e.id === body.id) : undefined;
      if (!target) return err(400, 'bad_request', 'Bad request', 'Could not find entry to mark as note', `entry ${String(body.id ?? '')} not found`);
      target.note = body.data === 'true';
      return { status: 200, body: target };
    }
    const inc = this.find(body.investigationId);
    if (!inc || inc.investigationId === '') {
      return err(400, 'bad_request', 'Bad request', `Could not find investigation [${body.investigationId}]`, 'investigation not found');
    }
    if (inc.status === 2 && this.modes.entriesOnClosed === 'reject') {
      return err(412, 'precondition_failed', 'Precondition failed', 'Investigation is closed', 'cannot add entries to a closed investigation');
    }
    const entry: WarRoomEntry = {
      id: `${this.nextEntry++}@${body.investigationId}`,
      investigationId: body.investigationId,
      contents: typeof body.data === 'string' ? body.data : '',
      note: path === 'note',
      created: new Date().toISOString(),
      user: 'api-key',
    };
    const list = this.entries.get(body.investigationId) ?? [];
    list.push(entry);
    this.entries.set(body.investigationId, list);
    this.counters.notes += 1;
    return { status: 200, body: entry };
  }

  /** `POST /investigation/{id}` `{pageSize, fromTime}`: the war room's entries. */
  readEntries(investigationId: string, body: unknown): LifecycleAnswer {
    this.counters.entryReads += 1;
    if (!this.find(investigationId)) return err(400, 'bad_request', 'Bad request', `Could not find investigation [${investigationId}]`, 'investigation not found');
    const from = isObject(body) && typeof body.fromTime === 'string' ? Date.parse(body.fromTime) : NaN;
    const size = isObject(body) && typeof body.pageSize === 'number' ? body.pageSize : 50;
    const list = (this.entries.get(investigationId) ?? []).filter((e) => Number.isNaN(from) || Date.parse(e.created) >= from);
    return { status: 200, body: { id: investigationId, entries: list.slice(-size).map((e) => ({ id: e.id, contents: e.contents, note: e.note, created: e.created, user: e.user, format: 'markdown', type: 1 })) } };
  }

  /** Search filter on close time (ms bounds from the filter's fromClosedDate/toClosedDate). */
  closedInRange(inc: StoredIncident, from: number | undefined, to: number | undefined): boolean {
    if (this.modes.ignoreClosedDateFilter || (from === undefined && to === undefined)) return true;
    const closed = lc(inc).closed;
    if (!closed) return false;
    const at = Date.parse(closed);
    return (from === undefined || at >= from) && (to === undefined || at <= to);
  }

  /** The lifecycle fields as the server shows them. */
  wireFields(inc: StoredIncident): Record<string, unknown> {
    const f = lc(inc);
    return {
      closed: f.closed ?? ZERO_TIME,
      closeReason: f.closeReason ?? '',
      closeNotes: f.closeNotes ?? '',
      closingUserId: f.closingUserId ?? '',
      phase: f.phase ?? '',
    };
  }

  // ------------------------------------------------------------------------------------------------------------

  private versionCheck(inc: StoredIncident, version: unknown): LifecycleAnswer | undefined {
    if (this.conflicts > 0) {
      this.conflicts -= 1;
      this.save(inc); // someone else saved first
    }
    if (version === -1) return undefined;
    if (typeof version !== 'number' || version !== inc.version) {
      this.counters.conflicts += 1;
      return err(400, 'bad_request', 'Bad request', 'DB version error', `failed updating incident ${inc.id}: DB version error: version ${String(version)} is not the current version ${inc.version}`);
    }
    return undefined;
  }

  private close(inc: StoredIncident, reason: string, notes: string, user: string): void {
    inc.status = 2;
    Object.assign(lc(inc), { closed: new Date().toISOString(), closeReason: reason, closeNotes: notes, closingUserId: user });
    this.save(inc);
  }

  private reopen(inc: StoredIncident, save = true): void {
    inc.status = 1;
    const f = lc(inc);
    delete f.closed;
    f.closeReason = '';
    f.closeNotes = '';
    f.closingUserId = '';
    if (save) this.save(inc);
  }

  private save(inc: StoredIncident): void {
    inc.version += 1;
    inc.modified = new Date().toISOString();
  }

  private must(id: string): StoredIncident {
    const inc = this.find(id);
    if (!inc) throw new Error(`no incident ${id}`);
    return inc;
  }
}

/** The lifecycle fields live on the stored incident under one key, so the rest of the simulator is unchanged. */
function lc(inc: StoredIncident): LifecycleFields {
  const holder = inc as StoredIncident & { lifecycle?: LifecycleFields };
  holder.lifecycle ??= {};
  return holder.lifecycle;
}
