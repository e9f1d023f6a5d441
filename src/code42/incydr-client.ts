import { HTTPError, RequestError, type Got, type Hooks, type Options, type PlainResponse, type Request } from 'got';
import { ResponseTooLargeError, createHttpClient, tlsErrorCode, withBodyLimit, type HttpClientOptions } from '../infra/http.js';
import { ForwarderError } from '../infra/errors.js';
import type { RequestObserver } from '../infra/request-observer.js';
import { findForbiddenKey, parseUntrustedJson } from '../infra/safe-json.js';
import { Code42AuthError, Code42RequestError, Code42ResponseError, Code42TlsError } from './errors.js';
import { EventsCollector, type EventsKeep } from './events-stream.js';
import type { OddityListener } from './oddities.js';
import type { Code42Clock } from './code42-clock.js';
import type { RequestBudget } from './request-budget.js';
import {
  ActorSchema,
  RuleSchema,
  SessionPageSchema,
  SessionSchema,
  parseOrThrow,
  type Actor,
  type FileEvent,
  type Rule,
  type Session,
} from './schemas.js';
import { TokenProvider, notTheApi } from './token-provider.js';
import { maskUrlCredentials } from '../infra/mask-url.js';

/** The documented maximum page size of GET /v1/sessions. */
export const SESSIONS_PAGE_SIZE = 50;

export interface IncydrClientOptions extends Omit<HttpClientOptions, 'baseUrl'> {
  apiUrl: string;
  clientId: string;
  clientSecret: string;
  /** Shared request budget; every request (retries included) waits for it. */
  budget?: RequestBudget;
  observer?: RequestObserver;
  /** Largest response body accepted. @defaultValue 16 MiB */
  maxResponseBytes?: number;
  /**
   * Most bytes of one session's file-events answer read (it is streamed, never held whole): a guard against a
   * runaway answer; past it the rest is not read and the events counted so far stand. @defaultValue 1 GiB
   */
  maxEventsResponseBytes?: number;
  /** GET retries on network errors, 5xx and 429. @defaultValue 4 */
  retryLimit?: number;
  /** Longest Retry-After honoured by waiting; a longer one fails the request. @defaultValue 120 s */
  maxRetryAfterMs?: number;
  /** Longest backoff between GET retries. @defaultValue 20 s */
  backoffLimitMs?: number;
  clock?: () => number;
  /** Told about answers that are accepted although they differ from the documented API. */
  onOddity?: OddityListener;
  /** Fed with the `Date` header of every successful response (Code42's clock, for the poller). */
  serverClock?: Code42Clock;
}

export interface SessionQuery {
  /** Sessions beginning on or after this instant (epoch ms). */
  onOrAfter: number;
  /** Only sessions beginning before this instant (epoch ms). */
  before?: number;
  /** Severities 0–4 to ask for. */
  severities: readonly number[];
  /** States to ask for. */
  states: readonly string[];
  /** Sort order. @defaultValue end time ascending */
  order?: 'end_time_asc' | 'end_time_desc';
  /** Items per page, 1 to 50. @defaultValue 50 (a count probe asks for 1: the call costs the same, the answer is small) */
  pageSize?: number;
}

export interface SessionPage {
  /** Raw items: each is validated by the caller so that one bad item does not lose the page. */
  items: unknown[];
  /** Null when the answer did not say (paging then stops at a short page). */
  totalCount: number | null;
}

export interface SessionEvents {
  /** The first events of the session (as many as asked to keep). */
  events: FileEvent[];
  /** How many events Code42 holds for the session: its `totalCount`, or the events counted in the answer. */
  totalCount: number;
  /** The answer was over the events size cap and not read to its end: `totalCount` is a lower bound. */
  cut?: boolean;
}

/** Default of `maxEventsResponseBytes`. */
export const DEFAULT_MAX_EVENTS_RESPONSE_BYTES = 1024 ** 3;

type Endpoint = 'oauth' | 'sessions.list' | 'sessions.get' | 'sessions.events' | 'actors.get' | 'rules.get';

/**
 * Client of the Incydr API gateway: sessions, their file events, actors and alert rules.
 * One got instance per upstream; auth, the request budget and metrics live in its hooks.
 */
export class IncydrClient {
  readonly tokens: TokenProvider;
  private readonly http: Got;
  private readonly maxResponseBytes: number;
  private readonly maxEventsResponseBytes: number;
  private readonly onOddity: OddityListener | undefined;
  /** Observes a streamed answer (got runs no afterResponse hook for streams). */
  private readonly observeStreamed: (response: PlainResponse) => void;

  constructor(opts: IncydrClientOptions) {
    this.onOddity = opts.onOddity;
    this.maxResponseBytes = opts.maxResponseBytes ?? 16 * 1024 * 1024;
    this.maxEventsResponseBytes = opts.maxEventsResponseBytes ?? DEFAULT_MAX_EVENTS_RESPONSE_BYTES;
    this.observeStreamed = (response) => observeResponse(response, opts.observer, opts.serverClock);
    const base = createHttpClient({ ...opts, baseUrl: opts.apiUrl }, {
      retry: {
        limit: opts.retryLimit ?? 4,
        methods: ['GET'],
        statusCodes: [408, 429, 500, 502, 503, 504, 521, 522, 524],
        maxRetryAfter: opts.maxRetryAfterMs ?? 120_000,
        backoffLimit: opts.backoffLimitMs ?? 20_000,
      },
      hooks: observingHooks(opts.budget, opts.observer, opts.serverClock),
    });
    this.tokens = new TokenProvider({
      http: base,
      clientId: opts.clientId,
      clientSecret: opts.clientSecret,
      ...(opts.clock ? { clock: opts.clock } : {}),
    });
    const tokens = this.tokens;
    this.http = base.extend({
      hooks: {
        beforeRequest: [
          async (options) => {
            options.headers.authorization = `Bearer ${await tokens.getToken()}`;
          },
        ],
        afterResponse: [
          async (response, retryWithMergedOptions) => {
            // A token can be revoked or expire early: refresh once and repeat the request once.
            const ctx = response.request.options.context as { authRetried?: boolean };
            if (response.statusCode !== 401 || ctx.authRetried) return response;
            const used = String(response.request.options.headers.authorization ?? '').replace(/^Bearer /, '');
            tokens.invalidate(used);
            const fresh = await tokens.getToken();
            return retryWithMergedOptions({
              headers: { authorization: `Bearer ${fresh}` },
              context: { ...ctx, authRetried: true },
            });
          },
        ],
      },
    });
  }

  /** One page of GET /v1/sessions (page numbers start at 0). */
  async listSessionsPage(query: SessionQuery, pageNumber: number): Promise<SessionPage> {
    const params = new URLSearchParams();
    params.set('on_or_after', String(Math.floor(query.onOrAfter)));
    if (query.before !== undefined) params.set('before', String(Math.floor(query.before)));
    params.set('has_alerts', 'true');
    for (const state of query.states) params.append('state', state);
    for (const severity of query.severities) params.append('severity', String(severity));
    // Ascending end time (the default): sessions created while we page land on later pages instead of
    // shifting earlier ones. Descending: see the poller (newest activity first, and insertions only ever
    // push unread items to later offsets).
    params.set('order_by', 'end_time');
    params.set('sort_direction', query.order === 'end_time_desc' ? 'DESC' : 'ASC');
    const pageSize = query.pageSize === undefined ? SESSIONS_PAGE_SIZE : Math.min(SESSIONS_PAGE_SIZE, Math.max(1, Math.floor(query.pageSize)));
    params.set('page_size', String(pageSize));
    params.set('page_number', String(pageNumber));
    const body = await this.getJson('v1/sessions', 'sessions.list', params);
    const page = parseOrThrow(SessionPageSchema, body, `sessions page ${pageNumber}`);
    if (page.totalCount === undefined || page.totalCount === null) {
      // Counted on every page; the listener logs it once.
      this.onOddity?.({
        kind: 'sessions_page_without_total_count',
        detail: 'GET /v1/sessions answered without totalCount; paging until a page is shorter than asked',
      });
    }
    return { items: page.items, totalCount: page.totalCount ?? null };
  }

  /**
   * Every page of sessions matching `query`. With `totalCount`, pages until that many were read (not
   * by a short page: the server may cap the page size below what was asked). Without it, pages until a
   * page is shorter than asked, as the Incydr SDK's `iter_all` does, and reports the oddity.
   */
  async *iterateSessionPages(query: SessionQuery, maxPages = 100_000): AsyncGenerator<SessionPage> {
    let fetched = 0;
    for (let page = 0; page < maxPages; page++) {
      const result = await this.listSessionsPage(query, page);
      yield result;
      fetched += result.items.length;
      if (result.items.length === 0) return;
      if (result.totalCount === null) {
        if (result.items.length < SESSIONS_PAGE_SIZE) return;
      } else if (fetched >= result.totalCount) {
        return;
      }
    }
  }

  /** GET /v1/sessions/{id}; null when Code42 does not know it. */
  async getSession(sessionId: string): Promise<Session | null> {
    const body = await this.getJson(`v1/sessions/${encodeURIComponent(sessionId)}`, 'sessions.get', undefined, true);
    return body === null ? null : parseOrThrow(SessionSchema, body, 'session');
  }

  /**
   * GET /v1/sessions/{id}/events; a 404 means the session has no events. The answer is streamed: the first
   * events (`keep`) are kept, the rest only counted, so a session of any size costs the memory of what is kept.
   */
  async getSessionEvents(sessionId: string, keep: EventsKeep = { maxEvents: Number.POSITIVE_INFINITY }): Promise<SessionEvents> {
    const path = `v1/sessions/${encodeURIComponent(sessionId)}/events`;
    const what = `events of session ${sessionId}`;
    for (let authRetried = false; ; authRetried = true) {
      try {
        const read = await this.streamEvents(path, keep, what);
        const total = Math.max(read.declaredTotal ?? 0, read.counted);
        return { events: read.events, totalCount: total, ...(read.cut ? { cut: true } : {}) };
      } catch (caught) {
        const err = caught instanceof RequestError && caught.cause instanceof ForwarderError ? caught.cause : caught;
        // A token can be revoked or expire early: refresh once and repeat the request once (as the hook does
        // for buffered answers).
        if (err instanceof HTTPError && err.response.statusCode === 401 && !authRetried) {
          this.tokens.invalidate(String(err.response.request.options.headers.authorization ?? '').replace(/^Bearer /, ''));
          continue;
        }
        if (translateRequestError(err, 'sessions.events', true) === null) return { events: [], totalCount: 0 };
      }
    }
  }

  /** One streamed read of an events answer, through got's own retries (a retry starts the count over). */
  private streamEvents(path: string, keep: EventsKeep, what: string): Promise<ReturnType<EventsCollector['end']> & { cut: boolean }> {
    const cap = this.maxEventsResponseBytes;
    return new Promise((resolve, reject) => {
      let settled = false;
      const settle = (fn: () => void): void => {
        if (settled) return;
        settled = true;
        fn();
      };
      const read = (stream: Request): void => {
        const collector = new EventsCollector(keep, what);
        stream.once('response', (response: PlainResponse) => {
          collector.contentType = response.headers['content-type'];
          this.observeStreamed(response);
        });
        stream.on('data', (chunk: Buffer) => {
          if (settled) return;
          try {
            collector.write(chunk);
          } catch (err) {
            stream.destroy();
            settle(() => reject(err));
            return;
          }
          if (collector.bytesRead > cap) {
            // A runaway answer: keep what was read, stop reading.
            stream.destroy();
            settle(() => resolve({ ...collector.end(false), cut: true }));
          }
        });
        stream.once('end', () => {
          settle(() => {
            try {
              resolve({ ...collector.end(), cut: false });
            } catch (err) {
              reject(err);
            }
          });
        });
        // on, not once: a second error after the first must not go unhandled.
        stream.on('error', (err: Error) => settle(() => reject(err)));
        stream.once('retry', (_count: number, _error: unknown, createRetryStream: () => Request) => read(createRetryStream()));
      };
      read(this.http.stream(path, { context: { endpoint: 'sessions.events' } }));
    });
  }

  /** GET /v1/actors/actor/id/{id}; null when unknown. */
  async getActor(actorId: string): Promise<Actor | null> {
    const body = await this.getJson(`v1/actors/actor/id/${encodeURIComponent(actorId)}`, 'actors.get', undefined, true);
    return body === null ? null : parseOrThrow(ActorSchema, body, `actor ${actorId}`);
  }

  /** GET /v2/alert-rules/{id}; null when the rule was deleted. */
  async getRule(ruleId: string): Promise<Rule | null> {
    const body = await this.getJson(`v2/alert-rules/${encodeURIComponent(ruleId)}`, 'rules.get', undefined, true);
    return body === null ? null : parseOrThrow(RuleSchema, body, `rule ${ruleId}`);
  }

  /**
   * The authenticated got instance (token refresh, shared request budget, metrics in its hooks), for
   * the session write calls in session-actions.ts.
   */
  get authenticatedHttp(): Got {
    return this.http;
  }

  private async getJson(path: string, endpoint: Endpoint, searchParams?: URLSearchParams, notFoundIsNull = false): Promise<unknown> {
    let text: string;
    let contentType: string | undefined;
    let requestUrl: string = path;
    try {
      const res = await withBodyLimit(this.http.get(path, { ...(searchParams ? { searchParams } : {}), context: { endpoint } }), this.maxResponseBytes);
      text = res.body;
      contentType = res.headers['content-type'];
      requestUrl = maskUrlCredentials(res.url);
    } catch (caught) {
      // Errors thrown inside got's hooks (the token refresh) arrive wrapped in a RequestError.
      const err = caught instanceof RequestError && caught.cause instanceof ForwarderError ? caught.cause : caught;
      return translateRequestError(err, endpoint, notFoundIsNull);
    }
    let body: unknown;
    try {
      body = parseUntrustedJson(text);
    } catch (err) {
      throw new Code42ResponseError(
        `Code42 ${endpoint} answered with a body that is not JSON${notTheApi(contentType, requestUrl) || ` (content-type ${contentType ?? 'none'})`}${describeBody(text)}`,
        { cause: err },
      );
    }
    // Session pages are checked item by item by the intake; anything else is refused whole.
    const forbidden = endpoint === 'sessions.list' ? null : findForbiddenKey(body);
    if (forbidden) throw new Code42ResponseError(`Code42 ${endpoint} response: field ${forbidden}: forbidden key (possible prototype pollution)`, { field: forbidden });
    return body;
  }
}

/**
 * Turns a failed Code42 request into the daemon's error; null for a 404 the caller reads as "none".
 */
function translateRequestError(err: unknown, endpoint: Endpoint, notFoundIsNull: boolean): null {
  if (err instanceof ResponseTooLargeError) {
    throw new Code42ResponseError(`Code42 ${endpoint} refused: ${err.message} (CODE42_MAX_RESPONSE_SIZE)`, { cause: err });
  }
  if (err instanceof HTTPError) {
    const status = err.response.statusCode;
    if (status === 404 && notFoundIsNull) return null;
    if (status === 401 || status === 403) {
      throw new Code42AuthError(`Code42 refused the request to ${endpoint} with HTTP ${status} even with a fresh token: check the API client's roles`);
    }
    const body = String(err.response.body ?? '');
    const foreignBody = body.trim() !== '' && !isJson(body);
    const kind = foreignBody ? ` and a ${String(err.response.headers['content-type'] ?? 'non-JSON').split(';')[0]} body (not from the Code42 API: a proxy or load balancer?)` : '';
    throw new Code42RequestError(endpoint, `Code42 ${endpoint} failed with HTTP ${status}${kind}${describeBody(body)}`, status, { cause: err, foreignBody });
  }
  if (err instanceof Code42AuthError || err instanceof Code42RequestError || err instanceof Code42ResponseError) throw err;
  const certificateError = tlsErrorCode(err);
  if (certificateError) throw new Code42TlsError(certificateError, { cause: err });
  const code = err instanceof RequestError ? ` (${err.code})` : '';
  throw new Code42RequestError(endpoint, `Code42 ${endpoint} failed: ${(err as Error).message}${code}`, undefined, { cause: err });
}

function isJson(text: string): boolean {
  try {
    JSON.parse(text);
    return true;
  } catch {
    return false;
  }
}

/** A short, safe excerpt of a response body for error messages. */
function describeBody(text: string): string {
  const trimmed = text.replace(/\s+/g, ' ').trim();
  if (!trimmed) return '';
  return `: ${trimmed.length > 160 ? `${trimmed.slice(0, 160)}…` : trimmed}`;
}

const endpointOf = (options: Options): string => String((options.context as { endpoint?: string }).endpoint ?? 'other');

/** Counts one answer and reads Code42's clock from it. */
function observeResponse(response: PlainResponse, observer: RequestObserver | undefined, serverClock: Code42Clock | undefined): void {
  const options = response.request.options;
  serverClock?.observe(response.headers.date);
  const startedAt = (options.context as { startedAt?: number }).startedAt;
  observer?.({
    upstream: 'code42',
    endpoint: endpointOf(options),
    status: response.statusCode,
    durationMs: response.timings.phases.total ?? (startedAt !== undefined ? Date.now() - startedAt : 0),
  });
}

/**
 * Hooks shared by the token and API requests: the request budget and per-request metrics. A streamed request
 * gets no afterResponse hook: its error answers are counted where got reports the error, its good one by the
 * reader (observeResponse).
 */
function observingHooks(budget: RequestBudget | undefined, observer: RequestObserver | undefined, serverClock?: Code42Clock): Partial<Hooks> {
  const errorStatus = (error: RequestError): number | 'error' | null => {
    if (!error.response) return 'error';
    return error.options.isStream ? error.response.statusCode : null;
  };
  return {
    beforeRequest: [
      async (options) => {
        (options.context as { startedAt?: number }).startedAt = Date.now();
        if (budget) await budget.acquire(options.signal as AbortSignal | undefined);
      },
    ],
    afterResponse: [
      (response) => {
        observeResponse(response, observer, serverClock);
        return response;
      },
    ],
    beforeRetry: [
      (error) => {
        const status = errorStatus(error);
        if (status !== null) observer?.({ upstream: 'code42', endpoint: endpointOf(error.options), status, durationMs: error.timings?.phases.total ?? 0 });
      },
    ],
    beforeError: [
      (error) => {
        const status = error.name === 'RetryError' ? null : errorStatus(error);
        if (status !== null) observer?.({ upstream: 'code42', endpoint: endpointOf(error.options), status, durationMs: error.timings?.phases.total ?? 0 });
        return error;
      },
    ],
  };
}
