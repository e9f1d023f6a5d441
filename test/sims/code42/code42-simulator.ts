/**
 * A Code42 Incydr API gateway simulator: a real HTTP(S) server speaking the gateway's wire formats
 * (`POST /v1/oauth`, `GET /v1/sessions[...]`, actors, alert rules) with the faults a client meets in production:
 * expiring and revoked tokens, 429 with Retry-After, 5xx, proxy error pages, slow answers and late indexing.
 *
 * Per request, checks run in this order: latency, one-shot faults (failNext), rate limit, random errors
 * (not for oauth), bearer token, route. Every request is counted in stats() with the status it finally got.
 */
import { randomBytes, randomUUID } from 'node:crypto';
import { once } from 'node:events';
import { STATUS_CODES, type IncomingMessage, type ServerResponse } from 'node:http';
import { SimServer, mulberry32, readBody, sendText, sleep } from '../http-kit.js';
import {
  SESSION_STATES,
  type FileEventV2,
  type GeneratedTenant,
  type SessionInput,
  type WireActor,
  type WireRule,
  type WireSession,
} from './tenant-generator.js';
import { shapeActor, shapeEvents, shapeSession, type ActorShape, type SessionShape, type StateFilterMode, type TotalCountMode } from './shapes.js';

export type {
  FileEventV2,
  GeneratedTenant,
  SessionInput,
  State,
  WireActor,
  WireRule,
  WireSession,
} from './tenant-generator.js';

export interface Code42SimulatorOptions {
  /** @defaultValue 'key-sim-client' */
  clientId?: string;
  /** @defaultValue 'sim-client-secret' */
  clientSecret?: string;
  /** Carried in the token's `tenantUid` claim and on sessions the simulator fills in. @defaultValue 'sim-tenant-0001' */
  tenantId?: string;
  /** @defaultValue 900 */
  tokenTtlSeconds?: number;
  /**
   * Fixed window over ALL requests, oauth included, measured on the real clock (not `clock`). Over it: 429,
   * `Retry-After` (whole seconds, at least 1) and `{"msg":"Too Many Requests"}`. @defaultValue null
   */
  rateLimit?: { requests: number; perMs: number } | null;
  /** Fraction (0..1) of non-oauth requests answered 500, drawn from the seeded PRNG. @defaultValue 0 */
  errorRate?: number;
  /** Delay before every answer. @defaultValue 0 */
  latencyMs?: number;
  /** Epoch ms used for token expiry, late indexing and request timestamps. @defaultValue Date.now */
  clock?: () => number;
  /** Seed of the fault PRNG. @defaultValue 42 */
  seed?: number;
  tls?: { key: string; cert: string };
  port?: number;
  host?: string;
  /** How sessions pages carry `totalCount`. @defaultValue 'present' */
  totalCount?: TotalCountMode;
  /** What the `state` query parameter matches. @defaultValue 'latest' */
  stateFilter?: StateFilterMode;
  /** States the API knows besides the documented ones (accepted in the `state` query parameter). */
  extraStates?: string[];
  /**
   * Whether `addActivity` moves a session's `endTime` to the new activity (the optimistic reading of the
   * API). false: `endTime` stays where it was and only `lastUpdated`, scores, states and alerts change
   * (the pessimistic reading). @defaultValue true
   */
  endTimeMoves?: boolean;
  /**
   * Whether every change moves `endTime` to its time, a state change in the console or a new score without
   * new activity included (the most optimistic reading). @defaultValue false (only new activity may move it)
   */
  endTimeMovesOnEveryChange?: boolean;
  /**
   * How `page_number` is honoured: 'honoured', or 'ignored' (every page is the first: with `totalCount`
   * omitted, a listing that never ends). @defaultValue 'honoured'
   */
  paging?: 'honoured' | 'ignored';
}

/** New activity on an existing session (see `addActivity`). */
export interface SessionActivity {
  /** When the activity happened (sim clock); becomes `lastUpdated` (and `endTime` when it moves). */
  at: number;
  /** A new score entry with this severity (0–4). */
  severity?: number;
  /** A new state entry (an analyst's or Code42's change). */
  state?: string;
  /** A new triggered alert with this id. */
  alertId?: string;
  /** Adds this many moderate events. */
  events?: number;
}

export type Code42Endpoint =
  | 'oauth'
  | 'sessions.list'
  | 'sessions.get'
  | 'sessions.events'
  | 'actors.get'
  | 'rules.get'
  | 'other'
  | 'sessions.changeState'
  | 'sessions.addNote';

export const CODE42_ENDPOINTS: readonly Code42Endpoint[] = [
  'oauth',
  'sessions.list',
  'sessions.get',
  'sessions.events',
  'actors.get',
  'rules.get',
  'other',
  'sessions.changeState',
  'sessions.addNote',
];

export interface Code42Fault {
  status: number;
  /** Sent as the `Retry-After` header when given. */
  retryAfterSeconds?: number;
  /** Response body as sent. @defaultValue `{"msg":"<status text>"}` */
  body?: string;
  /**
   * @defaultValue JSON when `body` is absent or parses as JSON, otherwise 'text/html; charset=utf-8'
   */
  contentType?: string;
  /** Tested against the URL path (no query). @defaultValue every path except /v1/oauth */
  path?: RegExp;
}

export interface Code42RequestRecord {
  method: string;
  path: string;
  /** Raw query string without the leading '?'. */
  query: string;
  status: number;
  /** Sim clock, epoch ms, when the answer was sent. */
  at: number;
  endpoint: Code42Endpoint;
}

export interface Code42SimStats {
  total: number;
  byEndpoint: Record<string, number>;
  byStatus: Record<string, number>;
  tokensIssued: number;
  rateLimited: number;
}

interface Reply {
  status: number;
  body: string;
  contentType: string;
  headers: Record<string, string>;
  /** Writes the body piece by piece instead of `body` (a large answer is never built as one string). */
  stream?: (res: ServerResponse) => Promise<void>;
}

/** A session whose events answer is generated as it is sent (see serveManyEvents). */
interface ManyEvents {
  count: number;
  /** Event JSON texts, each with EVENT_ID_MARK where its event id goes; cycled through. */
  samples: string[];
}

const EVENT_ID_MARK = '__sim_event_id__';

interface SessionEntry {
  seq: number;
  /** Well-formed session (addSession), or undefined for raw entries. */
  wire: WireSession | undefined;
  /** sessionId usable for GET: the wire id, or a raw entry's string `sessionId`. */
  id: string | undefined;
  /** JSON text sent in pages and GET. */
  json: string;
  /** JSON text of the session's file events array as served, and their count. */
  eventsJson: string;
  /** The tidy events when the served ones are shaped (eventsOf returns these). */
  tidyEventsJson?: string;
  eventCount: number;
  visibleAt: number | undefined;
  beginTime: number | undefined;
  endTime: number | undefined;
}

interface QueuedFault {
  fault: Code42Fault;
  remaining: number;
}

const JSON_TYPE = 'application/json; charset=utf-8';
const MAX_PAGE_SIZE = 50;

function jsonReply(status: number, body: unknown, headers: Record<string, string> = {}): Reply {
  return { status, body: JSON.stringify(body), contentType: JSON_TYPE, headers };
}

function msg(status: number, text: string, headers: Record<string, string> = {}): Reply {
  return jsonReply(status, { msg: text }, headers);
}

function classify(method: string, path: string): Code42Endpoint {
  if (path === '/v1/oauth') return method === 'POST' ? 'oauth' : 'other';
  if (method === 'POST' && (path === '/v1/sessions/change-state' || /^\/v1\/sessions\/[^/]+\/change-state$/.test(path))) return 'sessions.changeState';
  if (method === 'POST' && /^\/v1\/sessions\/[^/]+\/add-note$/.test(path)) return 'sessions.addNote';
  if (method !== 'GET') return 'other';
  if (path === '/v1/sessions') return 'sessions.list';
  if (/^\/v1\/sessions\/[^/]+$/.test(path)) return 'sessions.get';
  if (/^\/v1\/sessions\/[^/]+\/events$/.test(path)) return 'sessions.events';
  if (/^\/v1\/actors\/actor\/id\/[^/]+$/.test(path)) return 'actors.get';
  if (/^\/v2\/alert-rules\/[^/]+$/.test(path)) return 'rules.get';
  return 'other';
}

function decodeSegment(segment: string | undefined): string {
  if (segment === undefined) return '';
  try {
    return decodeURIComponent(segment);
  } catch {
    return segment;
  }
}

function parseInteger(value: string): number | undefined {
  if (!/^-?\d+$/.test(value.trim())) return undefined;
  const n = Number(value.trim());
  return Number.isSafeInteger(n) ? n : undefined;
}

function latestBy<T>(items: readonly T[], key: (item: T) => number): T | undefined {
  let best: T | undefined;
  let bestKey = Number.NEGATIVE_INFINITY;
  for (const item of items) {
    const k = key(item);
    // `>=`: on equal timestamps the later array entry wins.
    if (k >= bestKey) {
      best = item;
      bestKey = k;
    }
  }
  return best;
}

function maxSeverity(session: WireSession): number {
  let max = 0;
  for (const s of session.scores) if (typeof s.severity === 'number' && s.severity > max) max = s.severity;
  return max;
}

function latestScore(session: WireSession): number {
  return latestBy(session.scores, (s) => s.sourceTimestamp)?.score ?? 0;
}

function currentStates(session: WireSession): string[] {
  const latest = latestBy(session.states, (s) => s.sourceTimestamp);
  if (!latest) return [];
  return latest.stateV2 !== undefined && latest.stateV2 !== latest.state ? [latest.state, latest.stateV2] : [latest.state];
}

function historyStates(session: WireSession): string[] {
  return session.states.flatMap((s) => (s.stateV2 !== undefined && s.stateV2 !== s.state ? [s.state, s.stateV2] : [s.state]));
}

interface ListQuery {
  onOrAfter: number | undefined;
  before: number | undefined;
  hasAlerts: boolean;
  states: string[];
  severities: number[];
  actorId: string | undefined;
  ruleIds: string[];
  orderBy: 'end_time' | 'score';
  descending: boolean;
  pageNumber: number;
  pageSize: number;
}

function parseListQuery(q: URLSearchParams, knownStates: ReadonlySet<string>): ListQuery | string {
  const first = (name: string): string | undefined => q.getAll(name)[0];

  const time = (name: string): number | undefined | string => {
    const raw = first(name);
    if (raw === undefined || raw === '') return undefined;
    const n = parseInteger(raw);
    return n === undefined ? `Invalid value for ${name}: '${raw}' (expected epoch milliseconds)` : n;
  };
  const onOrAfter = time('on_or_after');
  if (typeof onOrAfter === 'string') return onOrAfter;
  const before = time('before');
  if (typeof before === 'string') return before;

  let hasAlerts = true;
  const hasAlertsRaw = first('has_alerts');
  if (hasAlertsRaw !== undefined && hasAlertsRaw !== '') {
    const lower = hasAlertsRaw.toLowerCase();
    if (lower !== 'true' && lower !== 'false') return `Invalid value for has_alerts: '${hasAlertsRaw}' (expected true or false)`;
    hasAlerts = lower === 'true';
  }

  const states = q.getAll('state').filter((s) => s !== '');
  for (const s of states) {
    if (!knownStates.has(s)) return `Invalid value for state: '${s}' (expected one of ${[...knownStates].join(', ')})`;
  }

  const severities: number[] = [];
  for (const raw of q.getAll('severity').filter((s) => s !== '')) {
    const n = parseInteger(raw);
    if (n === undefined || n < 0 || n > 4) return `Invalid value for severity: '${raw}' (expected an integer from 0 to 4)`;
    severities.push(n);
  }

  const actorRaw = first('actor_id');
  const actorId = actorRaw === undefined || actorRaw === '' ? undefined : actorRaw;
  const ruleIds = q.getAll('rule_id').filter((s) => s !== '');

  let orderBy: ListQuery['orderBy'] = 'end_time';
  const orderRaw = first('order_by');
  if (orderRaw !== undefined && orderRaw !== '') {
    const lower = orderRaw.toLowerCase();
    if (lower !== 'end_time' && lower !== 'score') return `Invalid value for order_by: '${orderRaw}' (expected end_time or score)`;
    orderBy = lower;
  }

  let descending = true;
  const dirRaw = first('sort_direction');
  if (dirRaw !== undefined && dirRaw !== '') {
    const upper = dirRaw.toUpperCase();
    if (upper !== 'ASC' && upper !== 'DESC') return `Invalid value for sort_direction: '${dirRaw}' (expected ASC or DESC)`;
    descending = upper === 'DESC';
  }

  let pageNumber = 0;
  const pageRaw = first('page_number');
  if (pageRaw !== undefined && pageRaw !== '') {
    const n = parseInteger(pageRaw);
    if (n === undefined || n < 0) return `Invalid value for page_number: '${pageRaw}' (expected a non-negative integer)`;
    pageNumber = n;
  }

  let pageSize = 10;
  const sizeRaw = first('page_size');
  if (sizeRaw !== undefined && sizeRaw !== '') {
    const n = parseInteger(sizeRaw);
    if (n === undefined || n < 1) return `Invalid value for page_size: '${sizeRaw}' (expected a positive integer)`;
    pageSize = Math.min(n, MAX_PAGE_SIZE);
  }

  return {
    onOrAfter,
    before,
    hasAlerts,
    states,
    severities,
    actorId,
    ruleIds,
    orderBy,
    descending,
    pageNumber,
    pageSize,
  };
}

function base64url(value: unknown): string {
  return Buffer.from(JSON.stringify(value)).toString('base64url');
}

function actorDefaults(actorId: string, name: string): WireActor {
  return {
    active: true,
    actorId,
    alternateNames: [],
    country: null,
    department: null,
    division: null,
    employeeType: null,
    endDate: null,
    firstName: null,
    inScope: true,
    lastName: null,
    locality: null,
    managerActorId: null,
    name,
    notes: null,
    parentActorId: null,
    region: null,
    startDate: null,
    title: null,
  };
}

function ruleDefaults(id: string, name: string): WireRule {
  return {
    id,
    name,
    description: '',
    severity: '',
    isEnabled: true,
    source: '',
    notifications: { isEnabled: false, contacts: [] },
    vectors: {},
    filters: {},
    createdAt: '2022-10-05T15:38:53.385501Z',
    createdBy: 'admin@example.com',
    modifiedAt: '2022-10-05T15:38:53.385501Z',
    modifiedBy: 'admin@example.com',
    isSystemRule: false,
  };
}

/** Copies the defined keys of `patch` over `base` (so an explicit `undefined` keeps the default). */
function overlay<T extends object>(base: T, patch: object): T {
  const out: Record<string, unknown> = { ...(base as Record<string, unknown>) };
  for (const [key, value] of Object.entries(patch)) if (value !== undefined) out[key] = value;
  return out as T;
}

export class Code42Simulator {
  private readonly clientId: string;
  private readonly clientSecret: string;
  private readonly tenantId: string;
  private readonly tokenTtlSeconds: number;
  private readonly clock: () => number;
  private readonly rnd: () => number;
  private readonly serverOpts: { tls?: { key: string; cert: string }; port?: number; host?: string };

  private server: SimServer | undefined;
  private rateLimit: { requests: number; perMs: number } | null;
  private errorRate: number;
  private latencyMs: number;
  private eventsHook: ((sessionId: string) => Promise<void> | void) | undefined;
  private writeHook: ((endpoint: 'sessions.changeState' | 'sessions.addNote', path: string) => Promise<void> | void) | undefined;
  private readonly manyEvents = new Map<string, ManyEvents>();

  private totalCountMode: TotalCountMode;
  private stateFilter: StateFilterMode;
  private readonly knownStates = new Set<string>(SESSION_STATES);
  /** 'read-only': the API client may read but not write sessions (change-state and add-note answer 403). */
  private writeAccess: 'read-write' | 'read-only' = 'read-write';
  /** Sessions whose add-note answers 400 "too many notes already added to this session" (documented). */
  private readonly noteLimited = new Set<string>();
  /** Sessions gone from the tenant: every call naming them answers 404. */
  private readonly gone = new Set<string>();
  private readonly actorShapes = new Map<string, ActorShape>();

  private rateWindowStart = 0;
  private rateWindowCount = 0;

  /** token → expiry (sim clock, epoch ms). */
  private readonly tokens = new Map<string, number>();
  /** Every token ever minted, revoked ones included (secret-leak checks grep logs for them). */
  private readonly minted: string[] = [];
  private readonly faults: QueuedFault[] = [];

  private readonly entries: SessionEntry[] = [];
  private readonly byId = new Map<string, SessionEntry>();
  private seq = 0;
  private autoId = 0;
  /** Bumped on every session change; keys the list cache. */
  private version = 0;
  /** Last filtered + sorted list, reused while paging through the same query. */
  private listCache: { key: string; version: number; validUntil: number; matching: SessionEntry[] } | undefined;

  private readonly actorMap = new Map<string, WireActor>();
  private readonly ruleMap = new Map<string, WireRule>();
  private readonly deletedRules = new Set<string>();

  private log: Code42RequestRecord[] = [];
  private counters = this.emptyCounters();
  private endTimeMoves: boolean;
  private endTimeMovesOnEveryChange: boolean;
  private paging: 'honoured' | 'ignored';
  private listHook: ((pageNumber: number) => void) | null = null;

  constructor(opts: Code42SimulatorOptions = {}) {
    this.clientId = opts.clientId ?? 'key-sim-client';
    this.clientSecret = opts.clientSecret ?? 'sim-client-secret';
    this.tenantId = opts.tenantId ?? 'sim-tenant-0001';
    this.tokenTtlSeconds = opts.tokenTtlSeconds ?? 900;
    this.rateLimit = opts.rateLimit ?? null;
    this.errorRate = opts.errorRate ?? 0;
    this.latencyMs = opts.latencyMs ?? 0;
    this.clock = opts.clock ?? Date.now;
    this.endTimeMoves = opts.endTimeMoves ?? true;
    this.endTimeMovesOnEveryChange = opts.endTimeMovesOnEveryChange ?? false;
    this.paging = opts.paging ?? 'honoured';
    this.rnd = mulberry32(opts.seed ?? 42);
    this.totalCountMode = opts.totalCount ?? 'present';
    this.stateFilter = opts.stateFilter ?? 'latest';
    for (const state of opts.extraStates ?? []) this.knownStates.add(state);
    this.serverOpts = {};
    if (opts.tls) this.serverOpts.tls = opts.tls;
    if (opts.port !== undefined) this.serverOpts.port = opts.port;
    if (opts.host !== undefined) this.serverOpts.host = opts.host;
  }

  // -------------------------------------------------------------------------------------------------------------
  // Lifecycle

  async start(): Promise<string> {
    if (this.server) return this.server.url;
    this.server = await SimServer.start((req, res) => this.handle(req, res), this.serverOpts);
    return this.server.url;
  }

  get url(): string {
    if (!this.server) throw new Error('Code42Simulator is not started; call start() first');
    return this.server.url;
  }

  async close(): Promise<void> {
    const server = this.server;
    this.server = undefined;
    if (server) await server.close();
  }

  // -------------------------------------------------------------------------------------------------------------
  // Data

  /**
   * Stores a well-formed session (missing fields filled with plausible defaults) and returns it. The API serves
   * it as returned, or in `opts.shapes` when given (see shapes.ts; filters still read the tidy form). Adding a
   * sessionId that already exists replaces it in place (sessions change over time); its events are kept unless
   * `opts.events` is given.
   */
  addSession(session: SessionInput, opts: { events?: FileEventV2[]; visibleAt?: number; shapes?: readonly SessionShape[] } = {}): WireSession {
    const entry = this.storeSession(session, opts);
    return structuredClone(entry.wire) as WireSession;
  }

  private storeSession(session: SessionInput, opts: { events?: FileEventV2[]; visibleAt?: number; shapes?: readonly SessionShape[] }): SessionEntry {
    const now = this.clock();
    const beginTime = session.beginTime ?? now - 5 * 60_000;
    const endTime = session.endTime ?? beginTime + 60_000;
    const firstObserved = session.firstObserved ?? endTime + 60_000;
    const n = ++this.autoId;
    const defaults: WireSession = {
      sessionId: `sim-sess-${String(n).padStart(6, '0')}`,
      tenantId: this.tenantId,
      actorId: 'sim-actor-0001',
      beginTime,
      endTime,
      firstObserved,
      lastUpdated: session.lastUpdated ?? firstObserved,
      noRiskEvents: 0,
      lowEvents: 0,
      moderateEvents: 1,
      highEvents: 0,
      criticalEvents: 0,
      notes: [],
      riskIndicators: [],
      scores: [{ score: 5, severity: 2, sourceTimestamp: firstObserved }],
      triggeredAlerts: [{ alertId: `sim-alert-${String(n).padStart(6, '0')}`, ruleId: 'sim-rule-0001', lessonId: null }],
      states: [{ state: 'OPEN', stateV2: 'OPEN', sourceTimestamp: firstObserved, userId: null }],
      exfiltrationSummary: '1 document file(s) uploaded to personal Dropbox via browser',
      contextSummary: '',
      contentInspectionResults: { detectedOnAlerts: [] },
      type: 'STANDARD',
      userId: '1000000000000000001',
    };
    // Stored as JSON text (a deep copy that the caller cannot mutate afterwards, and ready to send).
    const tidyJson = JSON.stringify(overlay(defaults, session));
    const wire = JSON.parse(tidyJson) as WireSession;
    const shapes = opts.shapes ?? [];
    const json = shapes.length > 0 ? JSON.stringify(shapeSession(wire, shapes)) : tidyJson;
    const existing = this.byId.get(wire.sessionId);
    const tidyEvents = opts.events ? JSON.stringify(opts.events) : existing?.tidyEventsJson ?? existing?.eventsJson ?? '[]';
    const servedEvents = opts.events && shapes.includes('epoch-ms-event-time') ? JSON.stringify(shapeEvents(opts.events, shapes)) : undefined;
    const entry: SessionEntry = {
      seq: existing?.seq ?? ++this.seq,
      wire,
      id: wire.sessionId,
      json,
      eventsJson: servedEvents ?? (opts.events ? tidyEvents : existing?.eventsJson ?? '[]'),
      ...(servedEvents !== undefined ? { tidyEventsJson: tidyEvents } : !opts.events && existing?.tidyEventsJson ? { tidyEventsJson: existing.tidyEventsJson } : {}),
      eventCount: opts.events ? opts.events.length : existing?.eventCount ?? 0,
      visibleAt: opts.visibleAt,
      beginTime: wire.beginTime,
      endTime: wire.endTime,
    };
    if (existing) this.entries[this.entries.indexOf(existing)] = entry;
    else this.entries.push(entry);
    this.byId.set(wire.sessionId, entry);
    this.version += 1;
    return entry;
  }

  /**
   * Stores anything JSON-serialisable, served verbatim in list pages (and by GET when it has a string
   * `sessionId` that no well-formed session uses). Only a numeric `beginTime` is used for filtering; every other
   * list filter lets raw items through. Serialised at call time: later mutations of `raw` are not seen.
   */
  addRawSession(raw: unknown, opts: { visibleAt?: number } = {}): void {
    const json = JSON.stringify(raw) ?? 'null';
    const record = typeof raw === 'object' && raw !== null && !Array.isArray(raw) ? (raw as Record<string, unknown>) : undefined;
    const own = (key: string): unknown =>
      record && Object.prototype.hasOwnProperty.call(record, key) ? record[key] : undefined;
    const numeric = (value: unknown): number | undefined =>
      typeof value === 'number' && Number.isFinite(value) ? value : undefined;
    const id = own('sessionId');
    this.entries.push({
      seq: ++this.seq,
      wire: undefined,
      id: typeof id === 'string' ? id : undefined,
      json,
      eventsJson: '[]',
      eventCount: 0,
      visibleAt: opts.visibleAt,
      beginTime: numeric(own('beginTime')),
      endTime: numeric(own('endTime')),
    });
    this.version += 1;
  }

  /**
   * New activity on a stored session: `lastUpdated` moves to `activity.at`, and so does `endTime` unless the
   * simulator plays the reading where it does not (`endTimeMoves: false`). Returns the session as served.
   */
  addActivity(id: string, activity: SessionActivity): WireSession {
    const current = this.getSession(id);
    if (!current) throw new Error(`addActivity: no session ${id}`);
    const next: WireSession = { ...current, lastUpdated: activity.at };
    if (this.endTimeMoves && activity.at > (current.endTime ?? 0)) next.endTime = activity.at;
    if (activity.severity !== undefined) next.scores = [...current.scores, { score: activity.severity * 10, severity: activity.severity, sourceTimestamp: activity.at }];
    if (activity.state !== undefined) next.states = [...current.states, { state: activity.state as WireSession['states'][number]['state'], stateV2: activity.state as WireSession['states'][number]['state'], sourceTimestamp: activity.at, userId: null }];
    if (activity.alertId !== undefined) next.triggeredAlerts = [...current.triggeredAlerts, { alertId: activity.alertId, ruleId: current.triggeredAlerts[0]?.ruleId ?? 'sim-rule-0001', lessonId: null }];
    if (activity.events !== undefined) next.moderateEvents = (current.moderateEvents ?? 0) + activity.events;
    const entry = this.byId.get(id);
    return this.addSession(next as SessionInput, entry?.visibleAt !== undefined ? { visibleAt: entry.visibleAt } : {});
  }

  /** Plays the API's reading where `endTime` moves with new activity (true) or stays (false). */
  setEndTimeMoves(moves: boolean): void {
    this.endTimeMoves = moves;
  }

  /**
   * Calls `hook(pageNumber)` before each `GET /v1/sessions` page is computed, so a test can change the tenant
   * between two page reads of one listing (a session moving to the front while a client pages through).
   */
  setListHook(hook: ((pageNumber: number) => void) | null): void {
    this.listHook = hook;
  }

  /**
   * Adds or replaces an actor; fields not given default to null / empty like a sparse real profile. With
   * `opts.shape`, `GET /v1/actors/actor/id/{id}` serves it with its name null or left out.
   */
  addActor(actor: Partial<WireActor> & { actorId: string; name: string }, opts: { shape?: ActorShape } = {}): void {
    this.actorMap.set(actor.actorId, structuredClone(overlay(actorDefaults(actor.actorId, actor.name), actor)));
    if (opts.shape) this.actorShapes.set(actor.actorId, opts.shape);
    else this.actorShapes.delete(actor.actorId);
  }

  /** Adds or replaces a rule (also undoes an earlier deleteRule of that id). */
  addRule(rule: Partial<WireRule> & { id: string; name: string }): void {
    this.deletedRules.delete(rule.id);
    this.ruleMap.set(rule.id, structuredClone(overlay(ruleDefaults(rule.id, rule.name), rule)));
  }

  /** From now on `GET /v2/alert-rules/{id}` answers 404. */
  deleteRule(id: string): void {
    this.ruleMap.delete(id);
    this.deletedRules.add(id);
  }

  loadTenant(t: GeneratedTenant): void {
    for (const actor of t.actors) this.addActor(actor);
    for (const rule of t.rules) this.addRule(rule);
    for (const id of t.deletedRuleIds) this.deleteRule(id);
    for (const s of t.sessions) {
      const opts: { events: FileEventV2[]; visibleAt?: number; shapes?: readonly SessionShape[] } = { events: s.events };
      if (s.visibleAt !== undefined) opts.visibleAt = s.visibleAt;
      if (s.shapes) opts.shapes = s.shapes;
      this.storeSession(s.session, opts);
    }
  }

  sessionIds(): string[] {
    const ids: string[] = [];
    for (const e of this.entries) if (e.wire) ids.push(e.wire.sessionId);
    return ids;
  }

  /** The session in its tidy form (what the simulator's filters read). */
  getSession(id: string): WireSession | undefined {
    const entry = this.byId.get(id);
    return entry?.wire ? structuredClone(entry.wire) : undefined;
  }

  /** The session exactly as the API serves it (in its shapes, if any). */
  servedSession(id: string): unknown {
    const entry = this.byId.get(id);
    return entry ? (JSON.parse(entry.json) as unknown) : undefined;
  }

  /**
   * Serves `count` file events for the session (they replace its stored events in the events answer), generated
   * while the answer is written, in 64 KB pieces with backpressure: 100,000 events cost the simulator the
   * samples, not a 200 MB string. Event i is `samples[i % samples.length]` with `event.id` `ev-<i>`.
   */
  serveManyEvents(sessionId: string, count: number, samples: readonly FileEventV2[]): void {
    if (samples.length === 0) throw new Error('serveManyEvents: at least one sample event');
    this.manyEvents.set(sessionId, {
      count,
      samples: samples.map((e) => JSON.stringify({ ...e, event: { ...e.event, id: EVENT_ID_MARK } })),
    });
  }

  /** The session's file events in their tidy form. */
  eventsOf(id: string): FileEventV2[] {
    const entry = this.byId.get(id);
    return JSON.parse(entry?.tidyEventsJson ?? entry?.eventsJson ?? '[]') as FileEventV2[];
  }

  actors(): WireActor[] {
    return structuredClone([...this.actorMap.values()]);
  }

  rules(): WireRule[] {
    return structuredClone([...this.ruleMap.values()]);
  }

  // -------------------------------------------------------------------------------------------------------------
  // Faults

  /** Every access token this simulator has issued, in order. */
  issuedTokens(): string[] {
    return [...this.minted];
  }

  /** Every token issued so far answers 401 from now on (new tokens work). */
  expireAllTokens(): void {
    this.tokens.clear();
  }

  /** Queues `count` one-shot faults; each matching request consumes the oldest matching entry. */
  failNext(count: number, fault: Code42Fault): void {
    const n = Math.floor(count);
    if (n > 0) this.faults.push({ fault: { ...fault }, remaining: n });
  }

  /** Drops the queued one-shot faults (ends an outage made with a large failNext count). */
  clearFaults(): void {
    this.faults.length = 0;
  }

  setRateLimit(l: { requests: number; perMs: number } | null): void {
    this.rateLimit = l;
    this.rateWindowStart = 0;
    this.rateWindowCount = 0;
  }

  setErrorRate(rate: number): void {
    this.errorRate = rate;
  }

  setLatency(ms: number): void {
    this.latencyMs = ms;
  }

  /** How sessions pages carry `totalCount` from now on. */
  setTotalCount(mode: TotalCountMode): void {
    this.totalCountMode = mode;
  }

  /** What the `state` query parameter matches from now on. */
  setStateFilter(mode: StateFilterMode): void {
    this.stateFilter = mode;
    this.version += 1;
  }

  /** States the API knows besides the documented ones (a newer API than the client). */
  addKnownStates(...states: string[]): void {
    for (const state of states) this.knownStates.add(state);
  }

  /**
   * Awaits `hook` before answering a session's events request (`undefined` removes it): a test holds the call to
   * freeze or kill the client mid-job at a known point.
   */
  onEventsRequest(hook: ((sessionId: string) => Promise<void> | void) | undefined): void {
    this.eventsHook = hook;
  }

  /** A read-only API client: session writes answer 403 before anything is looked at (the role check comes first). */
  setWriteAccess(access: 'read-write' | 'read-only'): void {
    this.writeAccess = access;
  }

  /** The session has as many notes as Code42 takes: add-note answers 400 "too many notes already added to this session". */
  limitNotes(id: string): void {
    this.noteLimited.add(id);
  }

  /** The session is gone (retention, deletion): GET, events, change-state and add-note answer 404 for it. */
  removeSession(id: string): void {
    this.gone.add(id);
  }

  /**
   * Awaits `hook` before a session write (change-state, add-note) is carried out and answered (`undefined`
   * removes it): a test kills the client between two writes, then lets the held one through.
   */
  onWriteRequest(hook: ((endpoint: 'sessions.changeState' | 'sessions.addNote', path: string) => Promise<void> | void) | undefined): void {
    this.writeHook = hook;
  }

  // -------------------------------------------------------------------------------------------------------------
  // Observability

  stats(): Code42SimStats {
    return {
      total: this.counters.total,
      byEndpoint: { ...this.counters.byEndpoint },
      byStatus: { ...this.counters.byStatus },
      tokensIssued: this.counters.tokensIssued,
      rateLimited: this.counters.rateLimited,
    };
  }

  get requests(): ReadonlyArray<Code42RequestRecord> {
    return this.log;
  }

  /** Zeroes the counters and the request log. Issued tokens stay valid. */
  resetStats(): void {
    this.counters = this.emptyCounters();
    this.log = [];
  }

  private emptyCounters(): Code42SimStats {
    const byEndpoint: Record<string, number> = {};
    for (const e of CODE42_ENDPOINTS) byEndpoint[e] = 0;
    return { total: 0, byEndpoint, byStatus: {}, tokensIssued: 0, rateLimited: 0 };
  }

  // -------------------------------------------------------------------------------------------------------------
  // HTTP

  private async handle(req: IncomingMessage, res: ServerResponse): Promise<void> {
    const method = (req.method ?? 'GET').toUpperCase();
    const rawUrl = req.url ?? '/';
    const queryIndex = rawUrl.indexOf('?');
    const query = queryIndex >= 0 ? rawUrl.slice(queryIndex + 1) : '';
    let path = new URL(rawUrl, 'http://sim.invalid').pathname;
    if (path.length > 1 && path.endsWith('/')) path = path.slice(0, -1);
    const endpoint = classify(method, path);

    let reply: Reply;
    try {
      if (endpoint === 'sessions.events' && this.eventsHook) await this.eventsHook(decodeSegment(path.split('/')[3]));
      const body = await readBody(req, 1024 * 1024);
      // After the body is read: the write has fully arrived, whatever becomes of the client meanwhile.
      if ((endpoint === 'sessions.changeState' || endpoint === 'sessions.addNote') && this.writeHook) await this.writeHook(endpoint, path);
      reply = await this.process(req, method, path, new URLSearchParams(query), body, endpoint);
    } catch (err) {
      reply = msg(500, `simulator error: ${String(err)}`);
    }

    this.counters.total += 1;
    this.counters.byEndpoint[endpoint] = (this.counters.byEndpoint[endpoint] ?? 0) + 1;
    const statusKey = String(reply.status);
    this.counters.byStatus[statusKey] = (this.counters.byStatus[statusKey] ?? 0) + 1;
    this.log.push({ method, path, query, status: reply.status, at: this.clock(), endpoint });

    if (res.destroyed) return;
    // Code42's clock as the client can read it (whole seconds, like the real header).
    const date = new Date(this.clock()).toUTCString();
    if (reply.stream) {
      res.writeHead(reply.status, { 'content-type': reply.contentType, date, ...reply.headers });
      await reply.stream(res).catch(() => res.destroy());
      return;
    }
    sendText(res, reply.status, reply.body, reply.contentType, { date, ...reply.headers });
  }

  private async process(
    req: IncomingMessage,
    method: string,
    path: string,
    query: URLSearchParams,
    body: string,
    endpoint: Code42Endpoint,
  ): Promise<Reply> {
    if (this.latencyMs > 0) await sleep(this.latencyMs);

    const isOauthPath = path === '/v1/oauth';

    const fault = this.takeFault(path, isOauthPath);
    if (fault) return this.faultReply(fault);

    const limited = this.checkRateLimit();
    if (limited) return limited;

    if (!isOauthPath && this.errorRate > 0 && this.rnd() < this.errorRate) return msg(500, 'Internal Server Error');

    if (isOauthPath) return method === 'POST' ? this.oauth(req, query, body) : msg(404, 'Not Found');

    if (!this.authorized(req)) return msg(401, 'Unauthorized');

    return this.route(endpoint, path, query, body);
  }

  private takeFault(path: string, isOauthPath: boolean): Code42Fault | undefined {
    for (let i = 0; i < this.faults.length; i++) {
      const queued = this.faults[i];
      if (!queued) continue;
      const matcher = queued.fault.path;
      let matches: boolean;
      if (matcher) {
        matcher.lastIndex = 0;
        matches = matcher.test(path);
      } else {
        matches = !isOauthPath;
      }
      if (!matches) continue;
      queued.remaining -= 1;
      if (queued.remaining <= 0) this.faults.splice(i, 1);
      return queued.fault;
    }
    return undefined;
  }

  private faultReply(fault: Code42Fault): Reply {
    const headers: Record<string, string> = {};
    if (fault.retryAfterSeconds !== undefined) headers['retry-after'] = String(fault.retryAfterSeconds);
    if (fault.body === undefined) {
      return jsonReply(fault.status, { msg: STATUS_CODES[fault.status] ?? `HTTP ${fault.status}` }, headers);
    }
    let contentType = fault.contentType;
    if (contentType === undefined) {
      try {
        JSON.parse(fault.body);
        contentType = JSON_TYPE;
      } catch {
        contentType = 'text/html; charset=utf-8';
      }
    }
    return { status: fault.status, body: fault.body, contentType, headers };
  }

  private checkRateLimit(): Reply | undefined {
    const limit = this.rateLimit;
    if (!limit) return undefined;
    const now = Date.now();
    if (this.rateWindowCount === 0 || now - this.rateWindowStart >= limit.perMs) {
      this.rateWindowStart = now;
      this.rateWindowCount = 0;
    }
    if (this.rateWindowCount >= limit.requests) {
      this.counters.rateLimited += 1;
      const waitMs = this.rateWindowStart + limit.perMs - now;
      const retryAfter = Math.max(1, Math.ceil(waitMs / 1000));
      return msg(429, 'Too Many Requests', { 'retry-after': String(retryAfter) });
    }
    this.rateWindowCount += 1;
    return undefined;
  }

  private oauth(req: IncomingMessage, query: URLSearchParams, body: string): Reply {
    const contentType = String(req.headers['content-type'] ?? '').toLowerCase();
    const form =
      body.length > 0 && (contentType === '' || contentType.includes('application/x-www-form-urlencoded'))
        ? new URLSearchParams(body)
        : new URLSearchParams();

    const grantType = query.get('grant_type') ?? form.get('grant_type');
    if (grantType !== null && grantType !== 'client_credentials') {
      return msg(400, `Unsupported grant_type '${grantType}'; only client_credentials is supported`);
    }

    let id: string | null = null;
    let secret: string | null = null;
    const auth = req.headers.authorization;
    if (typeof auth === 'string' && /^basic\s+/i.test(auth)) {
      const decoded = Buffer.from(auth.replace(/^basic\s+/i, '').trim(), 'base64').toString('utf8');
      const colon = decoded.indexOf(':');
      if (colon >= 0) {
        id = decoded.slice(0, colon);
        secret = decoded.slice(colon + 1);
      }
    } else {
      id = form.get('client_id');
      secret = form.get('client_secret');
    }
    if (id !== this.clientId || secret !== this.clientSecret) return msg(401, 'Unauthorized');

    const now = this.clock();
    const expiresAt = now + this.tokenTtlSeconds * 1000;
    const token = [
      base64url({ alg: 'RS256', typ: 'JWT', kid: 'sim-signing-key' }),
      base64url({
        sub: this.clientId,
        tenantUid: this.tenantId,
        jti: randomUUID(),
        iat: Math.floor(now / 1000),
        exp: Math.floor(expiresAt / 1000),
      }),
      randomBytes(32).toString('base64url'),
    ].join('.');
    this.tokens.set(token, expiresAt);
    this.minted.push(token);
    this.counters.tokensIssued += 1;
    return jsonReply(200, { access_token: token, token_type: 'bearer', expires_in: this.tokenTtlSeconds });
  }

  private authorized(req: IncomingMessage): boolean {
    const auth = req.headers.authorization;
    if (typeof auth !== 'string') return false;
    const match = /^bearer\s+(\S+)\s*$/i.exec(auth);
    const token = match?.[1];
    if (token === undefined) return false;
    const expiresAt = this.tokens.get(token);
    return expiresAt !== undefined && this.clock() < expiresAt;
  }

  private route(endpoint: Code42Endpoint, path: string, query: URLSearchParams, body = ''): Reply {
    const segments = path.split('/');
    if ((endpoint === 'sessions.changeState' || endpoint === 'sessions.addNote') && this.writeAccess === 'read-only') {
      return jsonReply(403, { error: 'Forbidden', message: 'The API client does not have the permission required for this request' });
    }
    if (endpoint === 'sessions.get' || endpoint === 'sessions.events' || endpoint === 'sessions.addNote' || (endpoint === 'sessions.changeState' && path !== '/v1/sessions/change-state')) {
      if (this.gone.has(decodeSegment(segments[3]))) return msg(404, 'Session not found');
    }
    switch (endpoint) {
      case 'sessions.changeState':
        return this.changeStateRequest(path === '/v1/sessions/change-state' ? undefined : decodeSegment(segments[3]), body);
      case 'sessions.addNote':
        return this.addNoteRequest(decodeSegment(segments[3]), body);
      case 'sessions.list':
        return this.listSessions(query);
      case 'sessions.get': {
        const entry = this.visibleEntry(decodeSegment(segments[3]));
        if (!entry) return msg(404, 'Session not found');
        return { status: 200, body: entry.json, contentType: JSON_TYPE, headers: {} };
      }
      case 'sessions.events': {
        const id = decodeSegment(segments[3]);
        const entry = this.visibleEntry(id);
        if (!entry) return msg(404, 'Session not found');
        const many = this.manyEvents.get(id);
        if (many) return { status: 200, body: '', contentType: JSON_TYPE, headers: {}, stream: (res) => writeManyEvents(res, many) };
        if (entry.eventCount === 0) return msg(404, `No alerts or file events found for session ${id}`);
        const body = `{"queryResult":{"fileEvents":${entry.eventsJson},"nextPgToken":"","problems":null,"totalCount":${entry.eventCount}}}`;
        return { status: 200, body, contentType: JSON_TYPE, headers: {} };
      }
      case 'actors.get': {
        const id = decodeSegment(segments[5]);
        const actor = this.actorMap.get(id);
        return actor ? jsonReply(200, shapeActor(actor, this.actorShapes.get(id))) : msg(404, 'Actor not found');
      }
      case 'rules.get': {
        const rule = this.ruleMap.get(decodeSegment(segments[3]));
        return rule ? jsonReply(200, rule) : msg(404, 'Rule not found');
      }
      default:
        if (path === '/v1/customer') {
          return jsonReply(200, { name: 'Simulated Org', registrationKey: 'sim-registration-key', tenantId: this.tenantId });
        }
        return msg(404, 'Not Found');
    }
  }

  // -------------------------------------------------------------------------------------------------------------
  // Session writes: change-state (batch `{ids, newState}` ≤ 100, or one id in the path `{newState}`), add-note
  // (`{noteContent}` ≤ 2,000 chars), and the same changes made by an analyst in the console.

  /** An analyst sets the session's state in the Incydr console (a new state entry naming the user). */
  consoleChangeState(id: string, state: string, user = 'analyst@example.com'): void {
    this.appendState(id, state, user);
  }

  /** Changes a stored session in place (new events, scores, alerts...); `events` replaces its file events. */
  updateSession(id: string, mutate: (s: WireSession) => void, opts: { events?: FileEventV2[] } = {}): WireSession {
    const entry = this.byId.get(id);
    if (!entry?.wire) throw new Error(`no session ${id}`);
    const wire = JSON.parse(entry.json) as WireSession;
    mutate(wire);
    wire.lastUpdated = Math.max(wire.lastUpdated + 1, this.clock());
    const stored: { events?: FileEventV2[]; visibleAt?: number } = {};
    if (opts.events) stored.events = opts.events;
    if (entry.visibleAt !== undefined) stored.visibleAt = entry.visibleAt;
    return JSON.parse(this.storeSession(wire, stored).json) as WireSession;
  }

  notesOf(id: string): Array<{ content: string; userId: string | null; sourceTimestamp: number }> {
    return (this.getSession(id)?.notes ?? []) as Array<{ content: string; userId: string | null; sourceTimestamp: number }>;
  }

  /** The session's current state (latest state entry). */
  stateOf(id: string): string | undefined {
    const s = this.getSession(id);
    return s ? latestBy(s.states, (x) => x.sourceTimestamp)?.state : undefined;
  }

  private appendState(id: string, state: string, user: string): void {
    this.updateSession(id, (s) => {
      const at = Math.max(this.clock(), ...s.states.map((x) => x.sourceTimestamp + 1));
      s.states.push({ state, stateV2: state, sourceTimestamp: at, userId: user });
      if (this.endTimeMovesOnEveryChange && at > s.endTime) s.endTime = at;
    });
  }

  /**
   * Code42 re-scores a session without new activity (a rule or risk model change): a new score entry at
   * the sim's now; `endTime` moves only when the simulator plays `endTimeMovesOnEveryChange`.
   */
  escalate(id: string, severity: number): WireSession {
    return this.updateSession(id, (s) => {
      const at = this.clock();
      s.scores.push({ score: severity * 10, severity, sourceTimestamp: at });
      if (this.endTimeMovesOnEveryChange && at > s.endTime) s.endTime = at;
    });
  }

  /** Plays the reading where every change moves `endTime` (true) or only new activity may (false). */
  setEndTimeMovesOnEveryChange(moves: boolean): void {
    this.endTimeMovesOnEveryChange = moves;
  }

  /** From now on `page_number` is honoured, or ignored (every page is the first). */
  setPaging(mode: 'honoured' | 'ignored'): void {
    this.paging = mode;
  }

  private changeStateRequest(pathId: string | undefined, body: string): Reply {
    let parsed: unknown;
    try {
      parsed = JSON.parse(body);
    } catch {
      return msg(400, 'Request body is not valid JSON');
    }
    const req = (parsed && typeof parsed === 'object' ? parsed : {}) as { ids?: unknown; newState?: unknown };
    const ids = pathId !== undefined ? [pathId] : req.ids;
    if (!Array.isArray(ids) || ids.length === 0 || ids.some((x) => typeof x !== 'string')) return msg(400, 'ids must be a non-empty list of session ids');
    if (ids.length > 100) return msg(400, `Too many ids: ${ids.length} (at most 100)`);
    if (typeof req.newState !== 'string' || !this.knownStates.has(req.newState)) return msg(400, `Invalid newState: ${JSON.stringify(req.newState)}`);
    const unknown = (ids as string[]).filter((id) => !this.byId.get(id)?.wire || this.gone.has(id));
    if (unknown.length > 0) return msg(404, `Session not found: ${unknown.join(', ')}`);
    for (const id of ids as string[]) this.appendState(id, req.newState, this.clientId);
    return { status: 204, body: '', contentType: JSON_TYPE, headers: {} };
  }

  private addNoteRequest(id: string, body: string): Reply {
    let parsed: unknown;
    try {
      parsed = JSON.parse(body);
    } catch {
      return msg(400, 'Request body is not valid JSON');
    }
    const content = (parsed as { noteContent?: unknown } | null)?.noteContent;
    if (typeof content !== 'string' || content.trim() === '') return msg(400, 'noteContent is required');
    if (content.length > 2000) return msg(400, 'noteContent has a 2000 character max limit');
    if (!this.byId.get(id)?.wire) return msg(404, 'Session not found');
    if (this.noteLimited.has(id)) return msg(400, 'too many notes already added to this session');
    this.updateSession(id, (s) => {
      s.notes = [...(s.notes ?? []), { id: randomUUID(), content, sourceTimestamp: this.clock(), userId: this.clientId }];
    });
    return { status: 204, body: '', contentType: JSON_TYPE, headers: {} };
  }

  private isVisible(entry: SessionEntry, now: number): boolean {
    return entry.visibleAt === undefined || entry.visibleAt <= now;
  }

  private visibleEntry(id: string): SessionEntry | undefined {
    const now = this.clock();
    const wire = this.byId.get(id);
    if (wire) return this.isVisible(wire, now) ? wire : undefined;
    return this.entries.find((e) => !e.wire && e.id === id && this.isVisible(e, now));
  }

  private listSessions(q: URLSearchParams): Reply {
    const parsed = parseListQuery(q, this.knownStates);
    if (typeof parsed === 'string') return msg(400, parsed);
    this.listHook?.(parsed.pageNumber);
    const now = this.clock();
    const matching = this.matchingSessions(parsed, now);
    const start = this.paging === 'ignored' ? 0 : parsed.pageNumber * parsed.pageSize;
    const page = matching.slice(start, start + parsed.pageSize);
    const items = `"items":[${page.map((e) => e.json).join(',')}]`;
    const total = this.totalCountMode === 'omitted' ? '' : `,"totalCount":${this.totalCountMode === 'null' ? 'null' : matching.length}`;
    const body = `{${items}${total}}`;
    return { status: 200, body, contentType: JSON_TYPE, headers: {} };
  }

  private matchingSessions(parsed: ListQuery, now: number): SessionEntry[] {
    const { pageNumber: _pageNumber, pageSize: _pageSize, ...filters } = parsed;
    const key = JSON.stringify({ ...filters, stateFilter: this.stateFilter });
    const cached = this.listCache;
    if (cached && cached.key === key && cached.version === this.version && now < cached.validUntil) return cached.matching;

    let validUntil = Number.POSITIVE_INFINITY;
    for (const e of this.entries) {
      if (e.visibleAt !== undefined && e.visibleAt > now && e.visibleAt < validUntil) validUntil = e.visibleAt;
    }
    const states = new Set(parsed.states);
    const severities = new Set(parsed.severities);
    const ruleIds = new Set(parsed.ruleIds);

    const matching = this.entries.filter((e) => {
      if (!this.isVisible(e, now)) return false;
      if (e.beginTime !== undefined) {
        if (parsed.onOrAfter !== undefined && e.beginTime < parsed.onOrAfter) return false;
        if (parsed.before !== undefined && e.beginTime >= parsed.before) return false;
      }
      const s = e.wire;
      if (!s) return true;
      if (parsed.hasAlerts && s.triggeredAlerts.length === 0) return false;
      if (parsed.actorId !== undefined && s.actorId !== parsed.actorId) return false;
      if (states.size > 0 && !(this.stateFilter === 'any-in-history' ? historyStates(s) : currentStates(s)).some((st) => states.has(st))) return false;
      if (severities.size > 0 && !severities.has(maxSeverity(s))) return false;
      if (ruleIds.size > 0 && !s.triggeredAlerts.some((a) => ruleIds.has(a.ruleId))) return false;
      return true;
    });

    const sortKey = (e: SessionEntry): number =>
      parsed.orderBy === 'score' ? (e.wire ? latestScore(e.wire) : 0) : e.endTime ?? e.beginTime ?? 0;
    const keyed = matching.map((e) => ({ e, k: sortKey(e) }));
    const direction = parsed.descending ? -1 : 1;
    keyed.sort((a, b) => {
      const diff = a.k - b.k;
      return diff !== 0 ? diff * direction : a.e.seq - b.e.seq;
    });
    const sorted = keyed.map((x) => x.e);
    this.listCache = { key, version: this.version, validUntil, matching: sorted };
    return sorted;
  }
}

/** Writes a ManyEvents answer with backpressure; stops when the client goes away. */
async function writeManyEvents(res: ServerResponse, many: ManyEvents): Promise<void> {
  const write = async (text: string): Promise<boolean> => {
    if (res.destroyed || res.writableEnded) return false;
    if (!res.write(text)) await once(res, 'drain').catch(() => undefined);
    return !res.destroyed;
  };
  if (!(await write('{"queryResult":{"fileEvents":['))) return;
  let piece = '';
  for (let i = 0; i < many.count; i++) {
    piece += (i > 0 ? ',' : '') + (many.samples[i % many.samples.length] as string).replace(EVENT_ID_MARK, `ev-${i}`);
    if (piece.length >= 65_536) {
      if (!(await write(piece))) return;
      piece = '';
    }
  }
  if (!(await write(`${piece}],"nextPgToken":"","problems":null,"totalCount":${many.count}}}`))) return;
  res.end();
}
