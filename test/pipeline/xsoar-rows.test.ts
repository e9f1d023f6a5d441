import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { after, before, describe, it } from 'node:test';
import { SessionSchema, type FileEvent, type Session } from '../../src/code42/schemas.js';
import { mapWithinBudget } from '../../src/xsoar/body-budget.js';
import { tableFieldKey } from '../../src/xsoar/file-event-rows.js';
import type { MappingOptions } from '../../src/xsoar/incident-mapper.js';
import { XsoarRejectedError } from '../../src/xsoar/errors.js';
import { XsoarClient } from '../../src/xsoar/xsoar-client.js';
import { XsoarSimulator } from '../sims/xsoar/index.js';
import { XSOAR_API_KEY } from '../helpers/stack.js';

/** Our own fixture in the shape of the stock pack's `v2_file_event_response.json` (endpoint, Salesforce, OneDrive). */
const FIXTURE = JSON.parse(readFileSync(new URL('../fixtures/v2-file-event-response.json', import.meta.url), 'utf8')) as { fileEvents: FileEvent[] };

const SESSION: Session = SessionSchema.parse({
  sessionId: 'rows-session-1',
  tenantId: 'tenant-1',
  actorId: 'actor-1',
  actorName: 'jane.doe@example.com',
  type: 'ENDPOINT',
  beginTime: Date.parse('2024-05-01T12:30:00Z'),
  endTime: Date.parse('2024-05-01T12:40:00Z'),
  scores: [{ score: 90, severity: 4, sourceTimestamp: Date.parse('2024-05-01T12:30:00Z') }],
  states: [{ state: 'OPEN', stateV2: 'OPEN', sourceTimestamp: Date.parse('2024-05-01T12:30:00Z'), userId: null }],
  triggeredAlerts: [{ alertId: 'a-1', ruleId: 'r-1', ruleName: 'Cloud exfiltration', lessonId: null }],
  exfiltrationSummary: 'files moved to cloud storage',
});

const MAPPING: MappingOptions = {
  incidentType: 'Code42 Security Alert',
  consoleUrl: 'https://console.us.code42.com',
  createInvestigation: true,
  playbookId: null,
  includeFiles: true,
  maxFileEvents: 100_000,
  sourceBrand: 'Code42',
  maxBodyBytes: 6 * 1024 * 1024, // the XSOAR_MAX_BODY default
};

type Row = Record<string, unknown>;

/** Python truthiness, as the stock script's `elif value:` uses it. */
function truthy(v: unknown): boolean {
  if (Array.isArray(v)) return v.length > 0;
  if (v && typeof v === 'object') return Object.keys(v).length > 0;
  return v !== null && v !== undefined && v !== '' && v !== 0 && v !== false;
}

// The stock `code42-file-events-table` command (Packs/Code42/Integrations/Code42/Code42.py), line for line:
// deduplicate_v2_file_events (KeyError on a row without `event`), _flatten_file_event, _columnize_file_event,
// format_file_events.
function deduplicateV2(events: Row[]): Row[] {
  const seen = new Set<unknown>();
  return events.filter((e) => {
    if (!('event' in e)) throw new Error("KeyError: 'event'");
    const id = (e.event as Row).id;
    if (seen.has(id)) return false;
    seen.add(id);
    return true;
  });
}
function flatten(dict: Row): Row {
  const flat: Row = {};
  for (const [key, value] of Object.entries(dict)) {
    if (value && typeof value === 'object' && !Array.isArray(value)) {
      for (const [k, v] of Object.entries(flatten(value as Row))) flat[`${key}.${k}`] = v;
    } else if (Array.isArray(value) && value.length) flat[key] = value.join(', ');
    else if (truthy(value)) flat[key] = value;
  }
  return flat;
}
function columnize(obj: unknown): unknown {
  if (obj && typeof obj === 'object' && !Array.isArray(obj)) return Object.entries(flatten(obj as Row)).map(([k, v]) => `**${k}:** ${String(v)}`).join('\n');
  if (Array.isArray(obj) && obj.length) return obj.join(', ');
  return obj;
}
function fileEventsTable(incident: { CustomFields: Row }): Row[] {
  const events = deduplicateV2(incident.CustomFields.code42fileevents as Row[]);
  return events.map((event) => {
    const formatted: Row = {};
    for (const [k, v] of Object.entries(event)) {
      const column = columnize(v);
      if (truthy(column)) formatted[k] = column;
    }
    return formatted;
  });
}

/** XSOAR's DT path accessor on a list (`incident.code42fileevents.file.hash.md5`): one value per row. */
function dt(rows: Row[], path: string): unknown[] {
  return rows.map((row) => path.split('.').reduce<unknown>((v, key) => (v && typeof v === 'object' ? (v as Row)[key] : undefined), row));
}

describe('code42fileevents rows that every stock consumer can read', () => {
  let sim: XsoarSimulator;
  let client: XsoarClient;

  before(async () => {
    sim = new XsoarSimulator({ apiKey: XSOAR_API_KEY, maxBodyBytes: MAPPING.maxBodyBytes });
    await sim.start();
    client = new XsoarClient({ url: sim.url, apiKey: XSOAR_API_KEY, apiKeyId: null, authType: 'standard', timeoutMs: 10_000, caFile: null, insecure: false, proxy: null, noProxy: null });
  });
  after(async () => sim.close());

  it('converts top-level keys the way ConvertKeysToTableFieldFormat does', () => {
    assert.equal(tableFieldKey('@timestamp'), 'timestamp');
    assert.equal(tableFieldKey('Max Results'), 'maxresults');
    assert.equal(tableFieldKey('responseControls'), 'responsecontrols');
  });

  it('gives the stock table command and the playbook accessors non-empty values on every row', async () => {
    const events = FIXTURE.fileEvents;
    const { body } = mapWithinBudget(SESSION, { actorName: 'jane.doe@example.com', ruleNames: ['Cloud exfiltration'], events, eventsTotal: events.length }, MAPPING);
    const { id } = await client.createIncident(body);
    const stored = sim.incidents().find((i) => i.id === id);
    assert.ok(stored, 'XSOAR stored the incident');
    assert.equal(stored.sourceBrand, 'Code42');
    const rows = stored.CustomFields.code42fileevents as Row[];
    assert.equal(rows.length, events.length);

    // code42-file-events-table (the layout's Code42FileEventsToMarkdownTable): nested V2 columns, all filled.
    const table = fileEventsTable(stored);
    assert.equal(table.length, events.length);
    for (const row of table) for (const column of ['timestamp', 'event', 'user', 'file', 'source', 'destination']) assert.ok(truthy(row[column]), `table column ${column}: ${JSON.stringify(row)}`);

    // "Code42 Exfiltration Playbook": file download by name and hash (nested), manager e-mail (flat V1 columns).
    for (const path of ['file.name', 'file.hash.md5', 'file.hash.sha256', 'filename', 'filepath', 'exposure', 'eventtype', 'eventtimestamp', 'sha256checksum', 'md5checksum', 'deviceusername', 'actor', 'filesize']) {
      const values = dt(rows, path);
      assert.ok(values.every(truthy), `${path}: ${JSON.stringify(values)}`);
    }
    // The CrowdStrike branch's host name: the device's name on the endpoint event, no cloud service as a "host".
    assert.deepEqual(dt(rows, 'oshostname'), ['LT-JDOE-7', undefined, undefined]);
    for (const row of rows) for (const key of Object.keys(row)) assert.match(key, /^[a-z0-9]+$/);
  });

  it('keeps a 5,000-event session under XSOAR_MAX_BODY and says how many events are shown of how many', async () => {
    const base = FIXTURE.fileEvents;
    const events: FileEvent[] = Array.from({ length: 5_000 }, (_, i) => {
      const e = structuredClone(base[i % base.length]) as FileEvent & { event: { id: string } };
      e.event.id = `bulk-${i}`;
      return e;
    });
    const result = mapWithinBudget(SESSION, { actorName: null, ruleNames: [], events, eventsTotal: 5_000 }, MAPPING);
    assert.ok(result.bytes <= MAPPING.maxBodyBytes, `${result.bytes} bytes ≤ ${MAPPING.maxBodyBytes}`);
    assert.ok(result.eventsShown > 100 && result.eventsShown < 5_000, `shown ${result.eventsShown}`);
    // Most of the budget is used (the estimate is close, not wasteful).
    assert.ok(result.bytes > MAPPING.maxBodyBytes * 0.9, `${result.bytes} bytes use the budget`);
    assert.match(result.incident.details, new RegExp(`File events: ${result.eventsShown} of 5000 shown; ${5_000 - result.eventsShown} more in Code42`));
    assert.match(result.incident.details, /create size limit of 6291456 bytes/);
    const raw = JSON.parse(result.incident.rawJSON) as Record<string, unknown>;
    assert.equal(raw.fileevents_total, 5_000);
    assert.equal(raw.fileevents_shown, result.eventsShown);
    assert.equal(raw.fileevents_omitted, 5_000 - result.eventsShown);
    assert.equal((result.incident.CustomFields.code42fileevents as unknown[]).length, result.eventsShown);
    // XSOAR with exactly that body limit takes it.
    const { id } = await client.createIncident(result.body);
    assert.ok(id);
  });

  it('reads a 413 as a create refused (nothing stored)', async () => {
    const small = new XsoarSimulator({ apiKey: XSOAR_API_KEY, maxBodyBytes: 2_000 });
    await small.start();
    try {
      const c = new XsoarClient({ url: small.url, apiKey: XSOAR_API_KEY, apiKeyId: null, authType: 'standard', timeoutMs: 10_000, caFile: null, insecure: false, proxy: null, noProxy: null });
      const { body } = mapWithinBudget(SESSION, { actorName: null, ruleNames: [], events: FIXTURE.fileEvents, eventsTotal: 3 }, MAPPING);
      await assert.rejects(c.createIncident(body), (err: unknown) => err instanceof XsoarRejectedError && err.statusCode === 413);
      assert.equal(small.incidents().length, 0);
    } finally {
      await small.close();
    }
  });
});
