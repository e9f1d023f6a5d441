/**
 * Cortex XSOAR REST API simulator (XSOAR 6.x on-prem and XSOAR 8.x SaaS flavours).
 *
 * A real HTTP(S) server that answers `POST /incident`, `POST /incidents/search`, `GET /incident/load/{id}`,
 * `GET /about` and `GET /health/server` the way the XSOAR server does on the wire: the same auth schemes, the same
 * error body shape, Go `encoding/json`-style validation of the create body, and injectable faults (outages, 429s,
 * rejections, errors before or after the incident is stored, lost and slow responses).
 */
import { createHash, timingSafeEqual } from 'node:crypto';
import type { IncomingMessage, ServerResponse } from 'node:http';
import { SimServer, mulberry32, sendJson, sendText } from '../http-kit.js';
import { DEFAULT_UNSEARCHABLE_FIELDS, QuerySyntaxError, matchesQuery, parseQuery } from './query.js';
import { CreateHold } from './create-hold.js';
import type { QueryNode, SearchableIncident } from './query.js';
import { IncidentLifecycle, type LifecycleModes } from './lifecycle.js';

// ---------------------------------------------------------------------------------------------------------------
// Public types

export interface XsoarSimulatorOptions {
  /** The valid API key. */
  apiKey: string;
  /**
   * The API key ID. When set the simulator behaves as XSOAR 8: it requires `x-xdr-auth-id` equal to this value and
   * accepts standard (`Authorization` = key) and advanced (nonce + timestamp + sha256) auth.
   */
  apiKeyId?: string;
  /** @defaultValue '8' when apiKeyId is set, else '6' */
  flavour?: '6' | '8';
  /** @defaultValue true. False: the server ignores a client-supplied dbotMirrorId. */
  keepDbotMirrorId?: boolean;
  /** If given, a create naming another playbookId is answered 400. */
  knownPlaybooks?: string[];
  /** A server without the `GET /user` route (answered 404 like any unknown route). @defaultValue false */
  noUserRoute?: boolean;
  /** @defaultValue 50 MiB. A larger request body is answered 413. */
  maxBodyBytes?: number;
  /** Seed of the PRNG that decides faults. @defaultValue 7 */
  seed?: number;
  /** Custom field cliNames that search treats as unsearchable. @defaultValue ['code42alertid', 'code42alertstate'] */
  unsearchableFields?: string[];
  /** Answer `"data": null` (Go nil slice) instead of `[]` when a search page is empty. @defaultValue false */
  emptySearchDataNull?: boolean;
  tls?: { key: string; cert: string };
  port?: number;
  host?: string;
  /**
   * What a successful create answers (XSOAR 8 SaaS / XSIAM may leave the id out): 'incident' the IncidentWrapper
   * (default), 'noId' the wrapper without `id`, 'null' a JSON null, 'empty' `{}`.
   */
  createAnswer?: 'incident' | 'noId' | 'null' | 'empty';
  /**
   * Strict query language: only the fields a real server is known to index match (system fields, custom fields,
   * `labels.type`/`labels.value`); a bare label type as a field (`code42sessionid:"…"`), `labels.<type>` and free
   * text match nothing. A query it cannot parse answers 400 (in either mode). @defaultValue false
   */
  strictQuery?: boolean;
  /** Search does not see an incident until this long after it was stored (a lagging index). @defaultValue 0 */
  indexLagMs?: number;
  /** Fraction of creates a pre-process rule drops: answered 200 with `null`, nothing stored. @defaultValue 0 */
  preProcessDropRate?: number;
  /** Incident types the server has. @defaultValue ['Code42 Security Alert', 'Unclassified'] */
  incidentTypes?: string[];
  /** Readings of the incident-lifecycle calls (updates, notes, closes); see lifecycle.ts. */
  lifecycle?: LifecycleModes;
}

export interface XsoarFaults {
  /** Fraction of creates answered 500 WITHOUT storing. */
  errorRate?: number;
  /** Fraction of creates stored, then answered 500 (JSON) or 502 (gateway HTML): ambiguous for the client. */
  errorAfterStoreRate?: number;
  /** Fraction of creates stored, then the socket is destroyed with no answer. */
  lostResponseRate?: number;
  /** Fraction of creates stored, then answered only after slowMs. */
  slowRate?: number;
  /** @defaultValue 30000 */
  slowMs?: number;
  /** Added to every answer. */
  latencyMs?: number;
  /** Added to every search answer besides latencyMs (a real server's search is slower than its other calls). */
  searchLatencyMs?: number;
}

export interface XsoarLabel {
  type: string;
  value: string;
}

/** The create body as a client sends it (Go matches keys case-insensitively; both spellings of CustomFields work). */
export interface CreateIncidentBody {
  name?: string;
  type?: string;
  severity?: number;
  occurred?: string;
  details?: string;
  rawJSON?: string;
  labels?: XsoarLabel[];
  CustomFields?: Record<string, unknown>;
  customFields?: Record<string, unknown>;
  createInvestigation?: boolean;
  playbookId?: string;
  dbotMirrorId?: string;
  sourceBrand?: string;
  sourceInstance?: string;
  owner?: string;
  [key: string]: unknown;
}

export interface StoredIncident {
  id: string;
  version: number;
  created: string;
  modified: string;
  /** The parsed JSON body exactly as received. */
  request: CreateIncidentBody;
  name: string;
  /** Effective type: the requested one if known, else "Unclassified". */
  type: string;
  /** The type the client asked for ("" when none). */
  rawType: string;
  severity: number;
  /** Normalized to UTC RFC 3339 (fraction kept); `created` when the client sent none. */
  occurred: string;
  rawJSON: string;
  labels: XsoarLabel[];
  CustomFields: Record<string, unknown>;
  /** Only when the client sent one and keepDbotMirrorId is on. */
  dbotMirrorId?: string;
  createInvestigation: boolean;
  /** The playbookId the client sent, if any. */
  playbookId?: string;
  status: number;
  investigationId: string;
  numericId: number;
  details?: string;
  sourceBrand?: string;
  sourceInstance?: string;
  owner?: string;
}

export interface XsoarRequestRecord {
  method: string;
  path: string;
  /** Final status; 0 when no answer reached the client (lost response, or the client left first). */
  status: number;
  /** Arrival time, ms since epoch. */
  at: number;
  /** 'create' | 'search' | 'load' | 'about' | 'health' | 'unknown' */
  endpoint: string;
}

export interface XsoarStats {
  creates: number;
  stored: number;
  searches: number;
  byStatus: Record<string, number>;
  authFailures: number;
}

// ---------------------------------------------------------------------------------------------------------------
// Constants

const ZERO_TIME = '0001-01-01T00:00:00Z';
const KNOWN_TYPES = new Set(['Code42 Security Alert', 'Unclassified']);
const TYPE_DEFAULT_PLAYBOOK: Record<string, string> = { 'Code42 Security Alert': 'Code42 Exfiltration Playbook' };
const VALID_SEVERITIES = new Set([0, 0.5, 1, 2, 3, 4]);
const NOT_WELL_FORMED = 'Request body is not well-formed.\nIt must be JSON.';
const TIMESTAMP_WINDOW_MS = 5 * 60 * 1000;
const NONCE_TTL_MS = 10 * 60 * 1000;
const MAX_SEARCH_SIZE = 1000;
const RFC3339 = /^(\d{4})-(\d{2})-(\d{2})T(\d{2}):(\d{2}):(\d{2})(\.\d{1,9})?(Z|[+-]\d{2}:\d{2})$/;

type Endpoint = 'create' | 'search' | 'load' | 'about' | 'health' | 'user' | 'incidenttypes' | 'playbooks' | 'unknown' | 'update' | 'close' | 'entry' | 'entryNote' | 'investigation';

/** The incident writes `onWriteRequest` sees: `POST /incident` with an id, `/incident/close`, `/entry`, `/entry/note`. */
export type XsoarWriteEndpoint = 'update' | 'close' | 'entry' | 'entryNote';

function isWriteEndpoint(endpoint: string): endpoint is XsoarWriteEndpoint {
  return endpoint === 'update' || endpoint === 'close' || endpoint === 'entry' || endpoint === 'entryNote';
}

interface Route {
  endpoint: Endpoint;
  /** Known path but another method. */
  methodNotAllowed: boolean;
  loadId?: string;
  investigationId?: string;
}

interface ErrorBody {
  id: string;
  status: number;
  title: string;
  detail: string;
  error: string;
  encrypted: false;
  multires: null;
}

function xsoarError(status: number, id: string, title: string, detail: string, error: string): ErrorBody {
  return { id, status, title, detail, error, encrypted: false, multires: null };
}

function badRequest(detail: string, error: string): ErrorBody {
  return xsoarError(400, 'bad_request', 'Bad request', detail, error);
}

/** A create/search body that Go's decoder (or the server right after it) refuses. */
class BodyError extends Error {
  constructor(readonly body: ErrorBody) {
    super(body.error);
  }
}

function jsonKind(v: unknown): string {
  if (v === null) return 'null';
  if (Array.isArray(v)) return 'array';
  if (typeof v === 'boolean') return 'bool';
  return typeof v; // 'string' | 'number' | 'object'
}

function unmarshalError(value: unknown, struct: string, fieldPath: string, goType: string): BodyError {
  const kind = jsonKind(value);
  const shown = kind === 'number' ? `number ${String(value)}` : kind;
  return new BodyError(
    badRequest(NOT_WELL_FORMED, `json: cannot unmarshal ${shown} into Go struct field ${struct}.${fieldPath} of type ${goType}`),
  );
}

function isPlainObject(v: unknown): v is Record<string, unknown> {
  return v !== null && typeof v === 'object' && !Array.isArray(v);
}

/** Go's decoder matches JSON keys to struct fields case-insensitively; returns [key, value] pairs for one field. */
function fieldEntries(body: Record<string, unknown>, goName: string): Array<[string, unknown]> {
  const lower = goName.toLowerCase();
  return Object.entries(body).filter(([k, v]) => k.toLowerCase() === lower && v !== null);
}

/** Last value wins (as in Go); null counts as absent. */
function field(body: Record<string, unknown>, goName: string): unknown {
  const entries = fieldEntries(body, goName);
  return entries.length === 0 ? undefined : entries[entries.length - 1]?.[1];
}

function validDate(y: number, mo: number, d: number, h: number, mi: number, s: number): boolean {
  if (mo < 1 || mo > 12 || d < 1 || h > 23 || mi > 59 || s > 59) return false;
  const dim = new Date(Date.UTC(y, mo, 0)).getUTCDate();
  return d <= dim;
}

/** Parses an RFC 3339 time the way Go's time.Time JSON decoding does; returns it normalized to UTC, or undefined. */
export function normalizeRfc3339(value: string): string | undefined {
  const m = RFC3339.exec(value);
  if (!m) return undefined;
  const [y, mo, d, h, mi, s] = [m[1], m[2], m[3], m[4], m[5], m[6]].map(Number) as [number, number, number, number, number, number];
  if (!validDate(y, mo, d, h, mi, s)) return undefined;
  const frac = m[7] ?? '';
  const zone = m[8] ?? 'Z';
  let offsetMin = 0;
  if (zone !== 'Z') {
    const sign = zone.startsWith('-') ? -1 : 1;
    const oh = Number(zone.slice(1, 3));
    const om = Number(zone.slice(4, 6));
    if (oh > 23 || om > 59) return undefined;
    offsetMin = sign * (oh * 60 + om);
  }
  const ms = Date.UTC(y, mo - 1, d, h, mi, s) - offsetMin * 60_000;
  const base = new Date(ms).toISOString().slice(0, 19);
  const trimmedFrac = frac.replace(/0+$/, '');
  return `${base}${trimmedFrac === '.' ? '' : trimmedFrac}Z`;
}

// ---------------------------------------------------------------------------------------------------------------
// The simulator

export class XsoarSimulator {
  private readonly opts: XsoarSimulatorOptions;
  private readonly flavour: '6' | '8';
  private keepDbotMirrorId: boolean;
  private readonly maxBodyBytes: number;
  private readonly unsearchable: string[];
  private server: SimServer | undefined;

  private stored: StoredIncident[] = [];
  private nextId = 1;
  private records: XsoarRequestRecord[] = [];
  private counters = { creates: 0, stored: 0, searches: 0, authFailures: 0 };
  private statusCounts: Record<string, number> = {};
  private faults: XsoarFaults = {};
  private random: () => number;
  private outageUntil = 0;
  private rateLimit = { remaining: 0, retryAfterSeconds: 1 };
  private rejections = { remaining: 0, detail: '' };
  private readonly nonces = new Map<string, number>();
  private readonly timers = new Set<{ timer: NodeJS.Timeout; resolve: () => void }>();
  private readonly createHold = new CreateHold();
  /** Fault point: answers of closed-incident searches held (the state sync's read), see holdClosedSearches. */
  private readonly closedSearchHold = new CreateHold();
  /** When each search for closed incidents arrived (epoch ms): when the state sync ran. */
  readonly closedSearchTimes: number[] = [];
  private afterStoreHook: ((incident: StoredIncident) => Promise<void> | void) | undefined;
  private writeHook: ((endpoint: XsoarWriteEndpoint, body: Record<string, unknown>, status: number) => Promise<void> | void) | undefined;
  private dropRandom: () => number;
  private dropped = 0;
  /** Updates, closes, war-room entries and the analyst's hand (lifecycle.ts). */
  readonly lifecycle: IncidentLifecycle;

  constructor(opts: XsoarSimulatorOptions) {
    this.opts = { ...opts };
    this.flavour = opts.flavour ?? (opts.apiKeyId !== undefined ? '8' : '6');
    this.keepDbotMirrorId = opts.keepDbotMirrorId ?? true;
    this.maxBodyBytes = opts.maxBodyBytes ?? 50 * 1024 * 1024;
    this.unsearchable = opts.unsearchableFields ?? [...DEFAULT_UNSEARCHABLE_FIELDS];
    this.random = mulberry32(opts.seed ?? 7);
    this.dropRandom = mulberry32((opts.seed ?? 7) + 1);
    this.lifecycle = new IncidentLifecycle(opts.lifecycle ?? {}, (id) => this.stored.find((i) => i.id === id), (inc) => this.wire(inc));
  }

  /**
   * Runs `hook` after a create is stored and before it is answered (a test can kill the client there, so that
   * the kill lands between XSOAR storing the incident and the client recording it). `undefined` removes it.
   */
  onStored(hook: ((incident: StoredIncident) => Promise<void> | void) | undefined): void {
    this.afterStoreHook = hook;
  }

  /**
   * Awaits `hook` after an incident write (an update, a close, a war-room entry) was carried out and before it
   * is answered (`undefined` removes it): a test kills the client there, so the kill lands between XSOAR applying
   * the write and the client learning of it. `status` is the answer the write is about to get.
   */
  onWriteRequest(hook: ((endpoint: XsoarWriteEndpoint, body: Record<string, unknown>, status: number) => Promise<void> | void) | undefined): void {
    this.writeHook = hook;
  }

  /** Creates a pre-process rule dropped (answered 2xx, stored nowhere). */
  droppedCount(): number {
    return this.dropped;
  }

  /** Changes the switchable server behaviours while running. */
  setMode(mode: Partial<Pick<XsoarSimulatorOptions, 'createAnswer' | 'strictQuery' | 'indexLagMs' | 'preProcessDropRate' | 'keepDbotMirrorId'>>): void {
    Object.assign(this.opts, mode);
    if (mode.keepDbotMirrorId !== undefined) this.keepDbotMirrorId = mode.keepDbotMirrorId;
  }

  /** Starts listening; resolves with `url`. */
  async start(): Promise<string> {
    if (this.server) return this.server.url;
    const serverOpts: { port?: number; host?: string; tls?: { key: string; cert: string } } = {};
    if (this.opts.port !== undefined) serverOpts.port = this.opts.port;
    if (this.opts.host !== undefined) serverOpts.host = this.opts.host;
    if (this.opts.tls !== undefined) serverOpts.tls = this.opts.tls;
    this.server = await SimServer.start((req, res) => this.handle(req, res), serverOpts);
    return this.server.url;
  }

  /**
   * XSOAR 6: the server base (clients call `<url>/incident`).
   * XSOAR 8: the API base like `https://api-<fqdn>` (clients call `<url>/xsoar/public/v1/incident` or `<url>/xsoar/incident`).
   */
  get url(): string {
    if (!this.server) throw new Error('XsoarSimulator is not started');
    return this.server.url;
  }

  async close(): Promise<void> {
    this.cancelTimers();
    this.createHold.release();
    this.closedSearchHold.release();
    const server = this.server;
    this.server = undefined;
    if (server) await server.close();
  }

  /** Replaces the current faults (an empty object clears them). */
  setFaults(f: XsoarFaults): void {
    for (const key of ['errorRate', 'errorAfterStoreRate', 'lostResponseRate', 'slowRate'] as const) {
      const v = f[key];
      if (v !== undefined && (!(v >= 0) || v > 1)) throw new RangeError(`${key} must be within 0..1, got ${v}`);
    }
    this.faults = { ...f };
  }

  /** Every request answers 503 for the next `durationMs` (0 ends an outage). */
  outage(durationMs: number): void {
    this.outageUntil = Date.now() + Math.max(0, durationMs);
  }

  /** The next `count` creates or searches answer 429 with `Retry-After: retryAfterSeconds`. */
  rateLimitNext(count: number, retryAfterSeconds: number): void {
    this.rateLimit = { remaining: Math.max(0, Math.floor(count)), retryAfterSeconds };
  }

  /** The next `count` (well-formed) creates answer 400 with this detail. */
  rejectNext(count: number, detail: string): void {
    this.rejections = { remaining: Math.max(0, Math.floor(count)), detail };
  }

  /**
   * Stores the next `count` creates, then holds their answers until `release()` on the returned handle
   * (or until the client goes away): the window where XSOAR has the incident and the client does not know.
   */
  holdCreates(count: number): CreateHold {
    this.createHold.arm(count);
    return this.createHold;
  }

  /**
   * Holds the answers of the next `count` searches for closed incidents (the state sync's read) until
   * released: a test can kill the daemon in the middle of a state-sync run.
   */
  holdClosedSearches(count: number): CreateHold {
    this.closedSearchHold.arm(count);
    return this.closedSearchHold;
  }

  /** Deletes incidents by id, as an analyst or a retention job would; returns how many went. */
  deleteIncidents(ids: readonly string[]): number {
    const before = this.stored.length;
    this.stored = this.stored.filter((i) => !ids.includes(i.id));
    return before - this.stored.length;
  }

  /** Stored incidents, in creation order (copies). */
  incidents(): StoredIncident[] {
    return this.stored.map((i) => structuredClone(i));
  }

  /** Stored incidents whose create body carried this dbotMirrorId (even when the server did not keep it). */
  incidentsByMirrorId(id: string): StoredIncident[] {
    return this.stored
      .filter((i) => i.dbotMirrorId === id || i.request.dbotMirrorId === id)
      .map((i) => structuredClone(i));
  }

  stats(): XsoarStats {
    return { ...this.counters, byStatus: { ...this.statusCounts } };
  }

  /** Every search answer: the page and size asked, the hits sent and the answer's bytes (how a client pages around its cap). */
  readonly searchAnswers: Array<{ page: number; size: number; hits: number; bytes: number }> = [];

  get requests(): ReadonlyArray<XsoarRequestRecord> {
    return this.records;
  }

  /** Clears incidents (ids restart at 1), requests, stats, faults, outage, pending 429s and rejections; reseeds. */
  reset(): void {
    this.stored = [];
    this.nextId = 1;
    this.records = [];
    this.counters = { creates: 0, stored: 0, searches: 0, authFailures: 0 };
    this.statusCounts = {};
    this.faults = {};
    this.outageUntil = 0;
    this.rateLimit = { remaining: 0, retryAfterSeconds: 1 };
    this.rejections = { remaining: 0, detail: '' };
    this.random = mulberry32(this.opts.seed ?? 7);
    this.cancelTimers();
    this.createHold.release();
    this.closedSearchHold.release();
    this.lifecycle.reset();
  }

  // -------------------------------------------------------------------------------------------------------------
  // Request handling

  private async handle(req: IncomingMessage, res: ServerResponse): Promise<void> {
    const at = Date.now();
    const method = (req.method ?? 'GET').toUpperCase();
    const path = new URL(req.url ?? '/', 'http://sim.invalid').pathname;
    const route = this.route(method, path);
    const record: XsoarRequestRecord = { method, path, status: 0, at, endpoint: route.endpoint };
    if (route.endpoint === 'create') this.counters.creates += 1;
    if (route.endpoint === 'search') this.counters.searches += 1;

    const answer = async (status: number, body: unknown, headers: Record<string, string> = {}): Promise<void> => {
      if (this.faults.latencyMs) await this.wait(this.faults.latencyMs, res);
      if (this.faults.searchLatencyMs && route.endpoint === 'search') await this.wait(this.faults.searchLatencyMs, res);
      if (res.destroyed || res.writableEnded || !res.socket || res.socket.destroyed) return this.finish(record, 0);
      if (typeof body === 'string' && headers['content-type'] !== undefined) {
        const { 'content-type': contentType, ...rest } = headers;
        sendText(res, status, body, contentType, rest);
      } else {
        sendJson(res, status, body, headers);
      }
      this.finish(record, status);
    };

    if (Date.now() < this.outageUntil) {
      return answer(
        503,
        xsoarError(503, 'service_unavailable', 'Service Unavailable', 'Server is temporarily unavailable', 'server is in maintenance mode'),
      );
    }

    const authFailure = this.authenticate(req);
    if (authFailure) {
      this.counters.authFailures += 1;
      return answer(authFailure.status, authFailure);
    }

    if (route.endpoint === 'unknown' || (route.endpoint === 'user' && this.opts.noUserRoute)) {
      return answer(404, xsoarError(404, 'not_found', 'Not found', `No such endpoint: ${method} ${path}`, 'route not found'));
    }
    if (route.methodNotAllowed) {
      return answer(
        405,
        xsoarError(405, 'method_not_allowed', 'Method not allowed', `Method ${method} is not allowed on ${path}`, 'method not allowed'),
      );
    }

    switch (route.endpoint) {
      case 'about':
        return answer(200, this.about());
      case 'health':
        return answer(200, { status: 'ok' });
      case 'user':
        return answer(200, { id: 'admin', username: 'admin', name: 'Admin', email: 'admin@example.com', roles: { demisto: ['Administrator'] } });
      case 'incidenttypes':
        return answer(200, [...this.knownTypes()].map((name) => ({ id: name, name, playbookId: TYPE_DEFAULT_PLAYBOOK[name] ?? '', autorun: name !== 'Unclassified' })));
      case 'playbooks': {
        // Every playbook id the server knows: the given list, or the type defaults.
        const ids = this.opts.knownPlaybooks ?? Object.values(TYPE_DEFAULT_PLAYBOOK);
        await this.readBodyLimited(req);
        return answer(200, { total: ids.length, playbooks: ids.map((id) => ({ id, name: id })) });
      }
      case 'load': {
        const inc = this.stored.find((i) => i.id === route.loadId);
        if (!inc) {
          return answer(
            404,
            xsoarError(404, 'not_found', 'Not found', `Could not find incident [${route.loadId ?? ''}]`, `incident ${route.loadId ?? ''} not found`),
          );
        }
        return answer(200, this.wire(inc));
      }
      case 'close':
      case 'entry':
      case 'entryNote':
      case 'investigation':
      case 'search':
      case 'create': {
        const read = await this.readBodyLimited(req);
        if (read.tooLarge) {
          return answer(
            413,
            xsoarError(413, 'request_entity_too_large', 'Request Entity Too Large', 'Request body is too large', 'http: request body too large'),
          );
        }
        if (this.rateLimit.remaining > 0) {
          this.rateLimit.remaining -= 1;
          return answer(
            429,
            xsoarError(429, 'too_many_requests', 'Too Many Requests', 'Rate limit exceeded, try again later', 'rate limit exceeded'),
            { 'retry-after': String(this.rateLimit.retryAfterSeconds) },
          );
        }
        let parsed: unknown;
        try {
          parsed = parseJson(read.text);
        } catch (err) {
          if (err instanceof BodyError) return answer(400, err.body);
          throw err;
        }
        if (route.endpoint === 'search') {
          if (isClosedSearch(parsed)) {
            this.closedSearchTimes.push(Date.now());
            await this.closedSearchHold.hold('closed-search', res);
          }
          return this.search(parsed, answer);
        }
        const lifecycleAnswer = this.lifecycleRequest(route, parsed, record);
        if (lifecycleAnswer) {
          const endpoint = record.endpoint;
          if (this.writeHook && isWriteEndpoint(endpoint)) await this.writeHook(endpoint, isPlainObject(parsed) ? parsed : {}, lifecycleAnswer.status);
          return answer(lifecycleAnswer.status, lifecycleAnswer.body);
        }
        return this.create(parsed, res, record, answer);
      }
      default:
        return answer(404, xsoarError(404, 'not_found', 'Not found', `No such endpoint: ${method} ${path}`, 'route not found'));
    }
  }

  /** Lifecycle calls, and `POST /incident` carrying an `id` (an update, not a create). */
  private lifecycleRequest(route: Route, parsed: unknown, record: XsoarRequestRecord): { status: number; body: unknown } | undefined {
    switch (route.endpoint) {
      case 'close':
        return this.lifecycle.closeRequest(parsed);
      case 'entry':
        return this.lifecycle.entry(parsed, 'entry');
      case 'entryNote':
        return this.lifecycle.entry(parsed, 'note');
      case 'investigation':
        return this.lifecycle.readEntries(route.investigationId ?? '', parsed);
      default:
        break;
    }
    const id = isPlainObject(parsed) ? field(parsed, 'id') : undefined;
    if ((typeof id === 'string' && id !== '') || typeof id === 'number') {
      this.counters.creates -= 1;
      record.endpoint = 'update';
      return this.lifecycle.update({ ...(parsed as Record<string, unknown>), id: String(id) });
    }
    return undefined;
  }

  private finish(record: XsoarRequestRecord, status: number): void {
    record.status = status;
    this.records.push(record);
    const key = String(status);
    this.statusCounts[key] = (this.statusCounts[key] ?? 0) + 1;
  }

  private route(method: string, path: string): Route {
    let rest: string | undefined;
    if (this.flavour === '6') {
      rest = path;
    } else {
      for (const prefix of ['/xsoar/public/v1', '/xsoar']) {
        if (path === prefix || path.startsWith(`${prefix}/`)) {
          rest = path.slice(prefix.length) || '/';
          break;
        }
      }
    }
    const unknown: Route = { endpoint: 'unknown', methodNotAllowed: false };
    if (rest === undefined) return unknown;
    if (rest.length > 1 && rest.endsWith('/')) rest = rest.slice(0, -1);
    const simple: Record<string, [Endpoint, string]> = {
      '/incident': ['create', 'POST'],
      '/incidents/search': ['search', 'POST'],
      '/about': ['about', 'GET'],
      '/health/server': ['health', 'GET'],
      '/user': ['user', 'GET'],
      '/incidenttype': ['incidenttypes', 'GET'],
      '/playbook/search': ['playbooks', 'POST'],
      '/incident/close': ['close', 'POST'],
      '/entry': ['entry', 'POST'],
      '/entry/note': ['entryNote', 'POST'],
    };
    const hit = simple[rest];
    if (hit) return { endpoint: hit[0], methodNotAllowed: method !== hit[1] };
    const load = /^\/incident\/load\/([^/]+)$/.exec(rest);
    if (load) return { endpoint: 'load', methodNotAllowed: method !== 'GET', loadId: decodeURIComponent(load[1] ?? '') };
    const investigation = /^\/investigation\/([^/]+)$/.exec(rest);
    if (investigation) return { endpoint: 'investigation', methodNotAllowed: method !== 'POST', investigationId: decodeURIComponent(investigation[1] ?? '') };
    return unknown;
  }

  private knownTypes(): Set<string> {
    return this.opts.incidentTypes ? new Set([...this.opts.incidentTypes, 'Unclassified']) : KNOWN_TYPES;
  }

  private about(): Record<string, string> {
    return this.flavour === '8'
      ? { demistoVersion: '8.9.0', buildNumber: '1187360', deploymentMode: 'saas', productMode: 'xsoar' }
      : { demistoVersion: '6.14.0', buildNumber: '1052451', deploymentMode: 'opp', productMode: 'xsoar' };
  }

  // -------------------------------------------------------------------------------------------------------------
  // Auth

  private authenticate(req: IncomingMessage): ErrorBody | undefined {
    const header = (name: string): string | undefined => {
      const v = req.headers[name];
      return Array.isArray(v) ? v[0] : v;
    };
    const authorization = header('authorization');
    if (this.flavour === '6') {
      if (authorization !== undefined && safeEqual(authorization, this.opts.apiKey)) return undefined;
      return xsoarError(403, 'forbidden', 'Forbidden', 'Issue with CSRF code', 'http: named cookie not present');
    }
    const unauthorized = (reason: string): ErrorBody =>
      xsoarError(401, 'unauthorized', 'Unauthorized', reason, 'Public API request unauthorized');
    if (this.opts.apiKeyId !== undefined) {
      const authId = header('x-xdr-auth-id');
      if (authId === undefined || authId === '') return unauthorized('Missing x-xdr-auth-id header');
      if (authId !== this.opts.apiKeyId) return unauthorized('Unknown API key ID');
    }
    if (authorization === undefined || authorization === '') return unauthorized('Missing Authorization header');
    const nonce = header('x-xdr-nonce');
    const timestamp = header('x-xdr-timestamp');
    if (nonce === undefined && timestamp === undefined) {
      return safeEqual(authorization, this.opts.apiKey) ? undefined : unauthorized('Invalid API key');
    }
    if (nonce === undefined || nonce === '') return unauthorized('Missing x-xdr-nonce header');
    if (timestamp === undefined || !/^\d{1,16}$/.test(timestamp)) return unauthorized('Missing or invalid x-xdr-timestamp header');
    const now = Date.now();
    if (Math.abs(now - Number(timestamp)) > TIMESTAMP_WINDOW_MS) {
      return unauthorized('Request timestamp is too far from the server time');
    }
    const expected = createHash('sha256').update(this.opts.apiKey + nonce + timestamp, 'utf8').digest('hex');
    if (!safeEqual(authorization, expected)) return unauthorized('Invalid API key hash');
    for (const [n, usedAt] of this.nonces) {
      if (now - usedAt > NONCE_TTL_MS) this.nonces.delete(n);
    }
    if (this.nonces.has(nonce)) return unauthorized('Nonce was already used');
    this.nonces.set(nonce, now);
    return undefined;
  }

  // -------------------------------------------------------------------------------------------------------------
  // Create

  private async create(
    body: unknown,
    res: ServerResponse,
    record: XsoarRequestRecord,
    answer: (status: number, body: unknown, headers?: Record<string, string>) => Promise<void>,
  ): Promise<void> {
    let valid: Omit<StoredIncident, 'id' | 'version' | 'created' | 'modified' | 'status' | 'investigationId' | 'numericId'>;
    try {
      valid = this.validateCreate(body);
    } catch (err) {
      if (err instanceof BodyError) return answer(err.body.status, err.body);
      throw err;
    }
    if (this.rejections.remaining > 0) {
      this.rejections.remaining -= 1;
      return answer(400, badRequest(this.rejections.detail, this.rejections.detail));
    }
    const { knownPlaybooks } = this.opts;
    if (knownPlaybooks && valid.playbookId !== undefined && valid.playbookId !== '' && !knownPlaybooks.includes(valid.playbookId)) {
      return answer(
        400,
        badRequest(`Could not find playbook [${valid.playbookId}]`, `playbook ${valid.playbookId} does not exist`),
      );
    }

    // One PRNG decision per create that got this far.
    const r = this.random();
    const f = this.faults;
    const errorBand = f.errorRate ?? 0;
    const afterStoreBand = errorBand + (f.errorAfterStoreRate ?? 0);
    const lostBand = afterStoreBand + (f.lostResponseRate ?? 0);
    const slowBand = lostBand + (f.slowRate ?? 0);

    if (r < errorBand) {
      return answer(500, xsoarError(500, 'internal_error', 'Internal server error', 'Failed creating incident', 'internal server error'));
    }
    // A pre-process rule dropped it: the create "succeeds", nothing is stored (what a real server answers is
    // unknown; null is the least informative reading).
    if (this.dropRandom() < (this.opts.preProcessDropRate ?? 0)) {
      this.dropped += 1;
      return answer(200, null);
    }

    const inc = this.store(valid);
    if (this.afterStoreHook) await this.afterStoreHook(structuredClone(inc));
    const wire = this.createAnswerBody(this.wire(inc));
    await this.createHold.hold(inc.dbotMirrorId ?? inc.request.dbotMirrorId ?? '', res);

    if (r < afterStoreBand) {
      const mid = errorBand + (afterStoreBand - errorBand) / 2;
      if (r < mid) {
        return answer(
          500,
          xsoarError(500, 'internal_error', 'Internal server error', 'Failed creating incident', 'context deadline exceeded'),
        );
      }
      return answer(502, '<html><head><title>502 Bad Gateway</title></head><body><center><h1>502 Bad Gateway</h1></center></body></html>\n', {
        'content-type': 'text/html',
      });
    }
    if (r < lostBand) {
      res.socket?.destroy();
      res.destroy();
      return this.finish(record, 0);
    }
    if (r < slowBand) {
      await this.wait(f.slowMs ?? 30_000, res);
      return answer(200, wire);
    }
    return answer(200, wire);
  }

  /** The body of a successful create's answer, as the configured server flavour gives it. */
  private createAnswerBody(wire: Record<string, unknown>): unknown {
    switch (this.opts.createAnswer ?? 'incident') {
      case 'noId': {
        const { id: _id, ...rest } = wire;
        return rest;
      }
      case 'null':
        return null;
      case 'empty':
        return {};
      default:
        return wire;
    }
  }

  private validateCreate(
    body: unknown,
  ): Omit<StoredIncident, 'id' | 'version' | 'created' | 'modified' | 'status' | 'investigationId' | 'numericId'> {
    const S = 'CreateIncidentRequest';
    if (!isPlainObject(body)) {
      throw new BodyError(
        badRequest(NOT_WELL_FORMED, `json: cannot unmarshal ${jsonKind(body)} into Go value of type web.${S}`),
      );
    }
    // Generic type checks for the struct's fields (Go's decoder rejects these before anything else).
    for (const [key, value] of Object.entries(body)) {
      if (value === null) continue;
      const spec = CREATE_FIELD_TYPES[key.toLowerCase()];
      if (!spec) continue;
      checkGoType(value, spec, S, spec.name);
    }

    const name = field(body, 'name') as string | undefined;
    if (name === undefined || name.trim() === '') {
      throw new BodyError(badRequest('name is required', 'incident name is required (CreateIncidentRequest.name)'));
    }
    const severityRaw = field(body, 'severity') as number | undefined;
    const severity = severityRaw ?? 0;
    if (!VALID_SEVERITIES.has(severity)) {
      throw new BodyError(
        badRequest(
          `Invalid severity ${severity}: must be one of 0, 0.5, 1, 2, 3, 4`,
          `invalid value ${severity} for Go struct field ${S}.severity of type domain.Severity`,
        ),
      );
    }
    const occurredRaw = field(body, 'occurred') as string | undefined;
    let occurred: string | undefined;
    if (occurredRaw !== undefined) {
      occurred = normalizeRfc3339(occurredRaw);
      if (occurred === undefined) {
        throw new BodyError(
          badRequest(
            NOT_WELL_FORMED,
            `parsing time ${JSON.stringify(occurredRaw)} as "2006-01-02T15:04:05Z07:00": cannot parse into Go struct field ${S}.occurred of type time.Time`,
          ),
        );
      }
    }
    const requestedType = (field(body, 'type') as string | undefined) ?? '';
    const type = this.knownTypes().has(requestedType) ? requestedType : 'Unclassified';

    const labels = ((field(body, 'labels') as unknown[] | undefined) ?? [])
      .filter(isPlainObject)
      .map((l) => ({
        type: (field(l, 'type') as string | undefined) ?? '',
        value: (field(l, 'value') as string | undefined) ?? '',
      }));

    const customFields: Record<string, unknown> = {};
    for (const [key, value] of fieldEntries(body, 'CustomFields')) {
      if (!isPlainObject(value)) throw unmarshalError(value, S, key, 'domain.CustomFields');
      for (const [cf, cv] of Object.entries(value)) {
        checkCustomFieldValue(cv, `${key}.${cf}`);
        customFields[cf] = structuredClone(cv);
      }
    }

    const str = (goName: string): string | undefined => field(body, goName) as string | undefined;
    const dbotMirrorId = str('dbotMirrorId');
    const playbookId = str('playbookId');
    const details = str('details');
    const sourceBrand = str('sourceBrand');
    const sourceInstance = str('sourceInstance');
    const owner = str('owner');

    const out: Omit<StoredIncident, 'id' | 'version' | 'created' | 'modified' | 'status' | 'investigationId' | 'numericId'> = {
      request: structuredClone(body) as CreateIncidentBody,
      name,
      type,
      rawType: requestedType,
      severity,
      occurred: occurred ?? '',
      rawJSON: str('rawJSON') ?? '',
      labels,
      CustomFields: customFields,
      createInvestigation: (field(body, 'createInvestigation') as boolean | undefined) ?? false,
    };
    if (dbotMirrorId !== undefined && dbotMirrorId !== '' && this.keepDbotMirrorId) out.dbotMirrorId = dbotMirrorId;
    if (playbookId !== undefined) out.playbookId = playbookId;
    if (details !== undefined) out.details = details;
    if (sourceBrand !== undefined) out.sourceBrand = sourceBrand;
    if (sourceInstance !== undefined) out.sourceInstance = sourceInstance;
    if (owner !== undefined) out.owner = owner;
    return out;
  }

  private store(
    valid: Omit<StoredIncident, 'id' | 'version' | 'created' | 'modified' | 'status' | 'investigationId' | 'numericId'>,
  ): StoredIncident {
    const id = String(this.nextId++);
    const now = new Date().toISOString();
    const inc: StoredIncident = {
      ...valid,
      id,
      version: 1,
      created: now,
      modified: now,
      occurred: valid.occurred === '' ? now : valid.occurred,
      status: valid.createInvestigation ? 1 : 0,
      investigationId: valid.createInvestigation ? id : '',
      numericId: Number(id),
    };
    this.stored.push(inc);
    this.counters.stored += 1;
    return inc;
  }

  /** The IncidentWrapper-like JSON the server answers with. */
  private wire(inc: StoredIncident): Record<string, unknown> {
    const playbookId = inc.playbookId ?? (inc.createInvestigation ? (TYPE_DEFAULT_PLAYBOOK[inc.type] ?? '') : '');
    return {
      id: inc.id,
      version: inc.version,
      account: '',
      name: inc.name,
      rawName: inc.name,
      type: inc.type,
      rawType: inc.rawType === '' ? inc.type : inc.rawType,
      severity: inc.severity,
      status: inc.status,
      occurred: inc.occurred,
      created: inc.created,
      modified: inc.modified,
      activated: inc.createInvestigation ? inc.created : ZERO_TIME,
      closed: ZERO_TIME,
      dueDate: ZERO_TIME,
      reminder: ZERO_TIME,
      details: inc.details ?? '',
      owner: inc.owner ?? '',
      sourceBrand: inc.sourceBrand ?? '',
      sourceInstance: inc.sourceInstance ?? '',
      labels: inc.labels.map((l) => ({ ...l })),
      CustomFields: structuredClone(inc.CustomFields),
      rawJSON: inc.rawJSON,
      dbotMirrorId: inc.dbotMirrorId ?? '',
      investigationId: inc.investigationId,
      playbookId,
      numericId: inc.numericId,
      closeReason: '',
      closeNotes: '',
      phase: '',
      runStatus: '',
      attachment: null,
      isPlayground: false,
      ...this.lifecycle.wireFields(inc),
    };
  }

  // -------------------------------------------------------------------------------------------------------------
  // Search

  private async search(
    body: unknown,
    answer: (status: number, body: unknown, headers?: Record<string, string>) => Promise<void>,
  ): Promise<void> {
    const S = 'SearchIncidentsData';
    if (!isPlainObject(body)) {
      return answer(400, badRequest(NOT_WELL_FORMED, `json: cannot unmarshal ${jsonKind(body)} into Go value of type web.${S}`));
    }
    const filter = field(body, 'filter');
    if (filter === undefined) return answer(400, badRequest('filter is required', `${S}.filter is required`));
    if (!isPlainObject(filter)) return answer(400, unmarshalError(filter, S, 'filter', 'domain.IncidentFilter').body);
    let spec: FilterSpec;
    try {
      spec = readFilter(filter);
    } catch (err) {
      if (err instanceof BodyError) return answer(400, err.body);
      throw err;
    }
    let node: QueryNode;
    try {
      node = parseQuery(spec.query);
    } catch (err) {
      if (err instanceof QuerySyntaxError) return answer(400, badRequest(`Invalid query: ${spec.query}`, err.message));
      throw err;
    }
    const visibleBefore = Date.now() - (this.opts.indexLagMs ?? 0);
    const matches = this.stored.filter((inc) => {
      if (Date.parse(inc.created) > visibleBefore) return false;
      if (spec.ids && !spec.ids.includes(inc.id)) return false;
      if (spec.types && !spec.types.includes(inc.type)) return false;
      if (spec.names && !spec.names.includes(inc.name)) return false;
      if (spec.statuses && !spec.statuses.includes(inc.status)) return false;
      if (spec.notStatuses?.includes(inc.status)) return false;
      if (spec.levels && !spec.levels.includes(inc.severity)) return false;
      if (spec.fromDate !== undefined && Date.parse(inc.created) < spec.fromDate) return false;
      if (spec.toDate !== undefined && Date.parse(inc.created) > spec.toDate) return false;
      if (!this.lifecycle.closedInRange(inc, spec.fromClosedDate, spec.toClosedDate)) return false;
      return matchesQuery(node, this.searchable(inc), { unsearchable: this.unsearchable, strict: this.opts.strictQuery ?? false });
    });
    if (spec.sort) sortIncidents(matches, spec.sort);
    const size = Math.min(Math.max(spec.size, 0), MAX_SEARCH_SIZE);
    const page = Math.max(spec.page, 0);
    const data = matches.slice(page * size, page * size + size).map((inc) => this.wire(inc));
    const out = { total: matches.length, data: data.length === 0 && this.opts.emptySearchDataNull ? null : data };
    this.searchAnswers.push({ page, size, hits: data.length, bytes: Buffer.byteLength(JSON.stringify(out)) });
    return answer(200, out);
  }

  private searchable(inc: StoredIncident): SearchableIncident {
    return inc;
  }

  // -------------------------------------------------------------------------------------------------------------
  // Helpers

  /** Drains the whole body; flags it when over maxBodyBytes (so the 413 reaches a client that is still sending). */
  private async readBodyLimited(req: IncomingMessage): Promise<{ text: string; tooLarge: boolean }> {
    const declared = Number(req.headers['content-length'] ?? NaN);
    let tooLarge = Number.isFinite(declared) && declared > this.maxBodyBytes;
    const chunks: Buffer[] = [];
    let size = 0;
    for await (const chunk of req) {
      const buf = chunk as Buffer;
      size += buf.length;
      if (size > this.maxBodyBytes) tooLarge = true;
      if (!tooLarge) chunks.push(buf);
    }
    return { text: tooLarge ? '' : Buffer.concat(chunks).toString('utf8'), tooLarge };
  }

  /** Sleeps, but wakes early when the client goes away or the simulator closes/resets. */
  private wait(ms: number, res: ServerResponse): Promise<void> {
    return new Promise<void>((resolve) => {
      const entry = {
        timer: setTimeout(() => done(), ms),
        resolve: () => done(),
      };
      const done = (): void => {
        clearTimeout(entry.timer);
        this.timers.delete(entry);
        res.off('close', done);
        resolve();
      };
      this.timers.add(entry);
      res.once('close', done);
    });
  }

  private cancelTimers(): void {
    for (const entry of [...this.timers]) entry.resolve();
  }
}

// ---------------------------------------------------------------------------------------------------------------
// Go-type validation tables

interface GoFieldSpec {
  /** JSON name as in the swagger (used in error messages). */
  name: string;
  kind: 'string' | 'bool' | 'int64' | 'float' | 'time' | 'stringArray' | 'labels' | 'skip';
  goType: string;
}

const CREATE_FIELDS: GoFieldSpec[] = [
  ...[
    'account', 'activatingingUserId', 'category', 'closeNotes', 'closeReason', 'closingUserId', 'details', 'id',
    'investigationId', 'name', 'owner', 'parent', 'phase', 'playbookId', 'rawCategory', 'rawCloseReason', 'rawJSON',
    'rawName', 'rawPhase', 'rawType', 'reason', 'sourceBrand', 'sourceInstance', 'type', 'runStatus', 'dbotMirrorId',
    'dbotMirrorInstance', 'dbotMirrorDirection',
  ].map((name) => ({ name, kind: 'string' as const, goType: name === 'runStatus' ? 'domain.RunStatus' : 'string' })),
  ...['createInvestigation', 'hasRole', 'isPlayground'].map((name) => ({ name, kind: 'bool' as const, goType: 'bool' })),
  ...['ShardID', 'autime', 'droppedCount', 'linkedCount', 'openDuration', 'version'].map((name) => ({
    name,
    kind: 'int64' as const,
    goType: 'int64',
  })),
  { name: 'severity', kind: 'float', goType: 'domain.Severity' },
  { name: 'status', kind: 'float', goType: 'domain.IncidentStatus' },
  { name: 'sla', kind: 'float', goType: 'domain.SLAState' },
  ...['activated', 'closed', 'created', 'dueDate', 'lastOpen', 'modified', 'notifyTime', 'occurred', 'reminder'].map(
    (name) => ({ name, kind: 'time' as const, goType: 'time.Time' }),
  ),
  ...['canvases', 'linkedIncidents', 'previousRoles', 'roles', 'sortValues', 'dbotMirrorTags'].map((name) => ({
    name,
    kind: 'stringArray' as const,
    goType: '[]string',
  })),
  { name: 'labels', kind: 'labels', goType: '[]domain.Label' },
  // CustomFields has its own rules (checkCustomFieldValue).
  { name: 'CustomFields', kind: 'skip', goType: 'domain.CustomFields' },
];

const CREATE_FIELD_TYPES: Record<string, GoFieldSpec> = Object.fromEntries(
  CREATE_FIELDS.map((spec) => [spec.name.toLowerCase(), spec]),
);

function checkGoType(value: unknown, spec: GoFieldSpec, struct: string, path: string): void {
  switch (spec.kind) {
    case 'skip':
      return;
    case 'string':
      if (typeof value !== 'string') throw unmarshalError(value, struct, path, spec.goType);
      return;
    case 'bool':
      if (typeof value !== 'boolean') throw unmarshalError(value, struct, path, spec.goType);
      return;
    case 'int64':
      if (typeof value !== 'number' || !Number.isInteger(value)) throw unmarshalError(value, struct, path, spec.goType);
      return;
    case 'float':
      if (typeof value !== 'number') throw unmarshalError(value, struct, path, spec.goType);
      return;
    case 'time':
      // Go's time.Time accepts only a JSON string in RFC 3339 form; the format itself is checked where it is used.
      if (typeof value !== 'string') throw unmarshalError(value, struct, path, spec.goType);
      if (normalizeRfc3339(value) === undefined) {
        throw new BodyError(
          badRequest(
            NOT_WELL_FORMED,
            `parsing time ${JSON.stringify(value)} as "2006-01-02T15:04:05Z07:00": cannot parse into Go struct field ${struct}.${path} of type time.Time`,
          ),
        );
      }
      return;
    case 'stringArray':
      if (!Array.isArray(value)) throw unmarshalError(value, struct, path, spec.goType);
      for (const item of value) {
        if (item !== null && typeof item !== 'string') throw unmarshalError(item, struct, path, 'string');
      }
      return;
    case 'labels':
      if (!Array.isArray(value)) throw unmarshalError(value, struct, path, spec.goType);
      for (const item of value) {
        if (item === null) continue;
        if (!isPlainObject(item)) throw unmarshalError(item, struct, path, 'domain.Label');
        for (const [k, v] of Object.entries(item)) {
          const lk = k.toLowerCase();
          if ((lk === 'type' || lk === 'value') && v !== null && typeof v !== 'string') {
            throw unmarshalError(v, struct, `${path}.${lk}`, 'string');
          }
        }
      }
      return;
  }
}

/** Custom field values: string, number, bool, null, arrays of strings (multi-select) or of objects (grid rows). */
function checkCustomFieldValue(value: unknown, path: string): void {
  const S = 'CreateIncidentRequest';
  if (value === null || ['string', 'number', 'boolean'].includes(typeof value)) return;
  if (Array.isArray(value)) {
    for (const item of value) {
      if (typeof item === 'string') continue;
      // A row's cells may hold nested JSON: the stock mapper stores V2 file events with their objects kept.
      if (!isPlainObject(item)) throw unmarshalError(item, S, path, 'grid row (map[string]interface {})');
    }
    return;
  }
  throw unmarshalError(value, S, path, 'string, number, bool or grid rows');
}

function parseJson(text: string): unknown {
  try {
    return JSON.parse(text) as unknown;
  } catch {
    const first = text.trimStart()[0];
    const error = first === undefined ? 'unexpected end of JSON input' : `invalid character '${first}' looking for beginning of value`;
    throw new BodyError(badRequest(NOT_WELL_FORMED, error));
  }
}

function safeEqual(a: string, b: string): boolean {
  const ab = Buffer.from(a, 'utf8');
  const bb = Buffer.from(b, 'utf8');
  return ab.length === bb.length && timingSafeEqual(ab, bb);
}

// ---------------------------------------------------------------------------------------------------------------
// Search filter

interface FilterSpec {
  query: string;
  size: number;
  page: number;
  ids?: string[];
  types?: string[];
  names?: string[];
  statuses?: number[];
  notStatuses?: number[];
  levels?: number[];
  fromDate?: number;
  toDate?: number;
  sort?: Array<{ field: string; asc: boolean }>;
  fromClosedDate?: number;
  toClosedDate?: number;
}

function readFilter(filter: Record<string, unknown>): FilterSpec {
  const S = 'SearchIncidentsData';
  const at = (name: string): string => `filter.${name}`;
  const get = (name: string): unknown => field(filter, name);
  const int = (name: string): number => {
    const v = get(name);
    if (v === undefined) return 0;
    if (typeof v !== 'number' || !Number.isInteger(v)) throw unmarshalError(v, S, at(name), 'int64');
    return v;
  };
  const strings = (name: string): string[] | undefined => {
    const v = get(name);
    if (v === undefined) return undefined;
    if (!Array.isArray(v) || v.some((x) => typeof x !== 'string')) throw unmarshalError(v, S, at(name), '[]string');
    return v as string[];
  };
  const numbers = (name: string, goType: string): number[] | undefined => {
    const v = get(name);
    if (v === undefined) return undefined;
    if (!Array.isArray(v) || v.some((x) => typeof x !== 'number')) throw unmarshalError(v, S, at(name), goType);
    return v as number[];
  };
  const date = (name: string): number | undefined => {
    const v = get(name);
    if (v === undefined) return undefined;
    const norm = typeof v === 'string' ? normalizeRfc3339(v) : undefined;
    if (norm === undefined) throw unmarshalError(v, S, at(name), 'time.Time');
    return Date.parse(norm);
  };
  const query = get('query');
  if (query !== undefined && typeof query !== 'string') throw unmarshalError(query, S, at('query'), 'string');
  const spec: FilterSpec = { query: (query as string | undefined) ?? '', size: int('size'), page: int('page') };
  const opt = <K extends keyof FilterSpec>(key: K, value: FilterSpec[K] | undefined): void => {
    if (value !== undefined) spec[key] = value;
  };
  opt('ids', strings('id'));
  opt('types', strings('type'));
  opt('names', strings('name'));
  opt('statuses', numbers('status', '[]domain.IncidentStatus'));
  opt('notStatuses', numbers('notStatus', '[]domain.IncidentStatus'));
  opt('levels', numbers('level', '[]domain.Severity'));
  opt('fromDate', date('fromDate'));
  opt('toDate', date('toDate'));
  opt('fromClosedDate', date('fromClosedDate'));
  opt('toClosedDate', date('toClosedDate'));
  const sort = get('sort');
  if (sort !== undefined) {
    if (!Array.isArray(sort)) throw unmarshalError(sort, S, at('sort'), '[]domain.Order');
    spec.sort = sort.map((o: unknown) => {
      if (!isPlainObject(o)) throw unmarshalError(o, S, at('sort'), 'domain.Order');
      const f = field(o, 'field');
      const asc = field(o, 'asc');
      if (f !== undefined && typeof f !== 'string') throw unmarshalError(f, S, at('sort.field'), 'string');
      if (asc !== undefined && typeof asc !== 'boolean') throw unmarshalError(asc, S, at('sort.asc'), 'bool');
      return { field: (f as string | undefined) ?? 'id', asc: (asc as boolean | undefined) ?? false };
    });
  }
  return spec;
}

function sortIncidents(list: StoredIncident[], order: Array<{ field: string; asc: boolean }>): void {
  const key = (inc: StoredIncident, f: string): number | string => {
    switch (f.toLowerCase()) {
      case 'id':
      case 'numericid':
        return inc.numericId;
      case 'created':
      case 'modified':
      case 'occurred':
        return Date.parse(inc[f.toLowerCase() as 'created' | 'modified' | 'occurred']);
      case 'severity':
        return inc.severity;
      case 'closed':
        return Date.parse((inc as { lifecycle?: { closed?: string } }).lifecycle?.closed ?? '') || 0;
      case 'status':
        return inc.status;
      case 'name':
        return inc.name.toLowerCase();
      case 'type':
        return inc.type.toLowerCase();
      default: {
        const v = inc.CustomFields[f.toLowerCase()];
        return typeof v === 'number' ? v : typeof v === 'string' ? v.toLowerCase() : '';
      }
    }
  };
  list.sort((a, b) => {
    for (const o of order) {
      const ka = key(a, o.field);
      const kb = key(b, o.field);
      if (ka === kb) continue;
      const cmp = ka < kb ? -1 : 1;
      return o.asc ? cmp : -cmp;
    }
    return a.numericId - b.numericId;
  });
}

/** A search for closed incidents (the state sync's): a closed-date window or the closed status. */
function isClosedSearch(body: unknown): boolean {
  const filter = isPlainObject(body) ? field(body, 'filter') : undefined;
  if (!isPlainObject(filter)) return false;
  const status = field(filter, 'status');
  return field(filter, 'fromClosedDate') !== undefined || (Array.isArray(status) && status.includes(2));
}
