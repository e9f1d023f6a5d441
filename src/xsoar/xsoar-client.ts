import { HTTPError, RequestError, type Got, type Options } from 'got';
import { ResponseTooLargeError, createHttpClient, tlsErrorCode, withBodyLimit, type HttpClientOptions } from '../infra/http.js';
import type { RequestObserver } from '../infra/request-observer.js';
import { parseUntrustedJson } from '../infra/safe-json.js';
import { authHeaders, type XsoarCredentials } from './auth.js';
import { XsoarAuthError, XsoarRateLimitedError, XsoarRejectedError, XsoarResponseError, XsoarResponseTooLargeError, XsoarTlsError, XsoarUnavailableError } from './errors.js';
import type { IncidentRequest } from './incident-request.js';

export interface XsoarClientOptions extends Omit<HttpClientOptions, 'baseUrl'>, XsoarCredentials {
  /** XSOAR 6 server URL or XSOAR 8 API URL. */
  url: string;
  observer?: RequestObserver;
  /** Largest response body accepted. @defaultValue 16 MiB */
  maxResponseBytes?: number;
}

/** An incident as a search returns it: just what this daemon needs to recognise its own. */
export interface FoundIncident {
  id: string;
  type?: string;
  dbotMirrorId?: string;
  labels?: Array<{ type?: unknown; value?: unknown }>;
  CustomFields?: Record<string, unknown>;
  rawJSON?: unknown;
}

/** Errors that mean "never connected": the request cannot have reached XSOAR. */
const NOT_SENT_CODES = new Set(['ECONNREFUSED', 'ENOTFOUND', 'EAI_AGAIN', 'ENETUNREACH', 'EHOSTUNREACH']);


/** Label type under which every incident carries its Code42 session id (a searchable key). */
export const SESSION_LABEL = 'code42sessionid';

/**
 * Client of the XSOAR REST API (6.x and 8.x). Creates are never retried here: whether to try again,
 * and whether to search first, is the worker's decision.
 */
export class XsoarClient {
  private readonly http: Got;
  /** Path prefixes to try, best first; the first that answers is kept. */
  private prefixes: string[];
  private readonly maxResponseBytes: number;

  constructor(opts: XsoarClientOptions) {
    this.maxResponseBytes = opts.maxResponseBytes ?? 16 * 1024 * 1024;
    this.prefixes = opts.apiKeyId ? ['xsoar/public/v1/', 'xsoar/'] : [''];
    const creds: XsoarCredentials = { apiKey: opts.apiKey, apiKeyId: opts.apiKeyId, authType: opts.authType };
    const observer = opts.observer;
    const endpointOf = (options: Options): string => String((options.context as { endpoint?: string }).endpoint ?? 'other');
    this.http = createHttpClient(
      { ...opts, baseUrl: opts.url },
      {
        retry: { limit: 0 },
        headers: { 'content-type': 'application/json' },
        hooks: {
          beforeRequest: [
            async (options) => {
              // Fresh headers for every attempt: an advanced key's nonce must never repeat.
              for (const [name, value] of Object.entries(authHeaders(creds))) options.headers[name] = value;
              // The caller's last check before the request leaves (a create verifies it still owns its job).
              const beforeSend = (options.context as { beforeSend?: () => Promise<void> }).beforeSend;
              if (beforeSend) await beforeSend();
            },
          ],
          afterResponse: [
            (response) => {
              observer?.({
                upstream: 'xsoar',
                endpoint: endpointOf(response.request.options),
                status: response.statusCode,
                durationMs: response.timings.phases.total ?? 0,
              });
              return response;
            },
          ],
          beforeError: [
            (error) => {
              if (!error.response) {
                observer?.({ upstream: 'xsoar', endpoint: endpointOf(error.options), status: 'error', durationMs: error.timings?.phases.total ?? 0 });
              }
              return error;
            },
          ],
        },
      },
    );
  }

  /**
   * POST /incident. Resolves with the new incident's id, or `null` when XSOAR accepted the create (2xx) without
   * saying which incident it made (XSOAR 8 SaaS / XSIAM, or a pre-process rule): the incident may exist, and
   * the caller must look it up instead of creating it again.
   */
  async createIncident(
    body: IncidentRequest | string,
    signal?: AbortSignal,
    beforeSend?: () => Promise<void>,
  ): Promise<{ id: string | null }> {
    const text = typeof body === 'string' ? body : JSON.stringify(body);
    const parsed = await this.request('incident', 'incident.create', { method: 'POST', body: text, signal, ambiguousOnFailure: true, beforeSend });
    const id = (parsed as { id?: unknown } | null)?.id;
    if ((typeof id === 'string' && id !== '') || typeof id === 'number') return { id: String(id) };
    return { id: null };
  }

  /**
   * Incidents of `incidentType` made for `sessionId`, searched by every key the incident carries, in order of
   * evidence: the label query public code uses, `dbotMirrorId`, the session id in `details`, and the exact name
   * (what demisto-sdk does when a create answers without an id). A form this server answers with 400 or with
   * nothing counts as "not supported here" and the next one is tried. Each hit is checked client-side.
   */
  async findIncidentsForSession(
    sessionId: string,
    incidentType: string,
    signal?: AbortSignal,
    keys: { name?: string | undefined } = {},
  ): Promise<FoundIncident[]> {
    for (const filter of sessionSearchFilters(sessionId, keys.name)) {
      let hits: FoundIncident[];
      try {
        hits = await this.search(filter, signal);
      } catch (err) {
        if (err instanceof XsoarRejectedError && err.statusCode === 400) continue;
        throw err;
      }
      const mine = hits.filter((inc) => isIncidentFor(inc, sessionId) && (!inc.type || inc.type === incidentType || inc.type === 'Unclassified'));
      if (mine.length > 0) return mine;
    }
    return [];
  }

  /**
   * The incidents of many sessions at once, by the same keys as findIncidentsForSession, each form one search for
   * the whole batch (terms ORed; names as a list): the label query, `dbotMirrorId`, `details`, the exact names.
   * A form this server answers with 400 is skipped; sessions found by one form are not asked again by the next.
   * Each hit is checked client-side. One page per form: a session whose incident did not fit is asked again later.
   */
  async findIncidentsForSessions(
    sessions: ReadonlyArray<{ sessionId: string; name?: string | null | undefined }>,
    incidentType: string,
    signal?: AbortSignal,
  ): Promise<Map<string, FoundIncident[]>> {
    const found = new Map<string, FoundIncident[]>();
    let remaining = [...sessions];
    for (const filter of batchSearchFilters()) {
      if (remaining.length === 0) break;
      const body = filter(remaining);
      if (!body) continue;
      let hits: FoundIncident[];
      try {
        hits = await this.search(body, signal);
      } catch (err) {
        if (err instanceof XsoarRejectedError && err.statusCode === 400) continue;
        throw err;
      }
      const wanted = new Set(remaining.map((r) => r.sessionId));
      for (const inc of hits) {
        if (inc.type && inc.type !== incidentType && inc.type !== 'Unclassified') continue;
        for (const sessionId of sessionIdsOf(inc)) {
          if (!wanted.has(sessionId)) continue;
          const list = found.get(sessionId) ?? [];
          if (!list.some((i) => i.id === inc.id)) list.push(inc);
          found.set(sessionId, list);
        }
      }
      remaining = remaining.filter((r) => !found.has(r.sessionId));
    }
    return found;
  }

  /**
   * Whether XSOAR holds any incident this forwarder made (the session label, any value): true, false, or null
   * when this server cannot answer the label query (400).
   */
  async holdsAnyForwardedIncident(signal?: AbortSignal): Promise<boolean | null> {
    try {
      const hits = await this.search({ query: `labels.type:${SESSION_LABEL}`, page: 0, size: 1 }, signal);
      return hits.length > 0;
    } catch (err) {
      if (err instanceof XsoarRejectedError && err.statusCode === 400) return null;
      throw err;
    }
  }

  /**
   * One page of a search. An answer over XSOAR_MAX_RESPONSE_SIZE (a few incidents near XSOAR_MAX_BODY
   * each) is asked again as the two half-size pages covering the same hits, down to one incident a page.
   */
  async search(filter: Record<string, unknown>, signal?: AbortSignal): Promise<FoundIncident[]> {
    try {
      return await this.searchOnce(filter, signal);
    } catch (err) {
      const size = typeof filter.size === 'number' ? filter.size : 0;
      if (!(err instanceof XsoarResponseTooLargeError) || size <= 1) throw err;
      const page = typeof filter.page === 'number' ? filter.page : 0;
      if (size % 2 === 0) {
        // The two pages of half the size that cover the same offsets: page*size = (2*page)*half.
        const half = size / 2;
        const a = await this.search({ ...filter, size: half, page: 2 * page }, signal);
        const b = a.length < half ? [] : await this.search({ ...filter, size: half, page: 2 * page + 1 }, signal);
        return [...a, ...b];
      }
      const out: FoundIncident[] = [];
      for (let offset = page * size; offset < (page + 1) * size; offset++) {
        const one = await this.search({ ...filter, size: 1, page: offset }, signal);
        if (one.length === 0) break;
        out.push(...one);
      }
      return out;
    }
  }

  private async searchOnce(filter: Record<string, unknown>, signal?: AbortSignal): Promise<FoundIncident[]> {
    const parsed = await this.postJson('incidents/search', 'incidents.search', { filter }, { signal, ambiguousOnFailure: false });
    const data = (parsed as { data?: unknown } | null)?.data;
    if (data === null || data === undefined) return [];
    if (!Array.isArray(data)) throw new XsoarResponseError('XSOAR search answered without a data list');
    return data.filter((d): d is FoundIncident => !!d && typeof d === 'object' && (typeof (d as FoundIncident).id === 'string' || typeof (d as { id?: unknown }).id === 'number')).map((d) => ({ ...d, id: String(d.id) }));
  }

  /** GET /about: server version, to check the URL and the key. */
  async about(signal?: AbortSignal): Promise<Record<string, unknown>> {
    const parsed = await this.request('about', 'about', { method: 'GET', signal, ambiguousOnFailure: false });
    if (!parsed || typeof parsed !== 'object') throw new XsoarResponseError('XSOAR /about did not answer with a JSON object (is XSOAR_URL the API URL?)');
    return parsed as Record<string, unknown>;
  }

  /**
   * What `check` reads to test a key and the configuration, through the paths real clients use: on XSOAR 8
   * `/xsoar/about` (demisto-py) and `GET /xsoar/user` (the Core REST API integration's test), then the public
   * prefix; on XSOAR 6 the root. Each throws the usual errors (auth, not found as XsoarRejectedError 404).
   */
  async probe(what: 'about' | 'user' | 'incidenttypes'): Promise<unknown> {
    const path = what === 'incidenttypes' ? 'incidenttype' : what;
    return this.request(path, `check.${what}`, { method: 'GET', ambiguousOnFailure: false }, this.checkPrefixes());
  }

  /** Playbooks matching `query` (`POST /playbook/search`), as `{id, name}`. */
  async searchPlaybooks(query: string): Promise<Array<{ id: string; name: string }>> {
    const parsed = await this.request(
      'playbook/search',
      'check.playbooks',
      { method: 'POST', body: JSON.stringify({ query, page: 0, size: 50 }), ambiguousOnFailure: false },
      this.checkPrefixes(),
    );
    const list = (parsed as { playbooks?: unknown } | null)?.playbooks;
    if (!Array.isArray(list)) return [];
    return list
      .filter((p): p is { id?: unknown; name?: unknown } => !!p && typeof p === 'object')
      .map((p) => ({ id: String(p.id ?? ''), name: String(p.name ?? '') }));
  }

  private checkPrefixes(): string[] {
    return this.prefixes.length > 1 || this.prefixes[0] !== '' ? ['xsoar/', 'xsoar/public/v1/'] : [''];
  }

  /**
   * One request to any XSOAR path, with this client's auth, prefix discovery, size cap and error
   * translation (used by the incident-update calls in incident-updates.ts).
   */
  send(path: string, endpoint: string, opts: { method: 'GET' | 'POST'; body?: unknown; signal?: AbortSignal | undefined; ambiguousOnFailure?: boolean }): Promise<unknown> {
    return this.request(path, endpoint, {
      method: opts.method,
      ...(opts.body !== undefined ? { body: JSON.stringify(opts.body) } : {}),
      signal: opts.signal,
      ambiguousOnFailure: opts.ambiguousOnFailure ?? false,
    });
  }

  private postJson(path: string, endpoint: string, body: unknown, opts: { signal?: AbortSignal | undefined; ambiguousOnFailure: boolean }): Promise<unknown> {
    return this.request(path, endpoint, { method: 'POST', body: JSON.stringify(body), ...opts });
  }

  private async request(
    path: string,
    endpoint: string,
    opts: { method: 'GET' | 'POST'; body?: string; signal?: AbortSignal | undefined; ambiguousOnFailure: boolean; beforeSend?: (() => Promise<void>) | undefined },
    fixedPrefixes?: string[],
  ): Promise<unknown> {
    const prefixes = fixedPrefixes ?? this.prefixes;
    // An error of the caller's own last check is the caller's, not a failed request: it goes back as it is.
    let refused: { error: unknown } | undefined;
    const callerCheck = opts.beforeSend;
    const beforeSend = callerCheck
      ? async (): Promise<void> => {
          try {
            await callerCheck();
          } catch (error) {
            refused = { error };
            throw error;
          }
        }
      : undefined;
    for (let i = 0; i < prefixes.length; i++) {
      const prefix = prefixes[i] as string;
      try {
        const res = await withBodyLimit(
          this.http(`${prefix}${path}`, {
            method: opts.method,
            ...(opts.body !== undefined ? { body: opts.body } : {}),
            ...(opts.signal ? { signal: opts.signal } : {}),
            context: { endpoint, ...(beforeSend ? { beforeSend } : {}) },
          }),
          this.maxResponseBytes,
        );
        if (i > 0 && !fixedPrefixes) this.prefixes = this.prefixes.slice(i);
        try {
          return parseUntrustedJson(res.body);
        } catch {
          throw new XsoarResponseError(`XSOAR ${endpoint} answered with a body that is not JSON (content-type ${res.headers['content-type'] ?? 'none'}): is XSOAR_URL the API URL?`);
        }
      } catch (err) {
        if (refused) throw refused.error;
        // A 404 on the documented public prefix: this server has the path under /xsoar only.
        if (err instanceof HTTPError && err.response.statusCode === 404 && i + 1 < prefixes.length) continue;
        throw translateError(err, endpoint, opts.ambiguousOnFailure);
      }
    }
    throw new XsoarResponseError(`XSOAR has no ${path} endpoint under any known prefix`);
  }
}

/** The search filters that find a session's incident, best evidenced first. */
export function sessionSearchFilters(sessionId: string, name?: string): Array<Record<string, unknown>> {
  const quoted = JSON.stringify(sessionId);
  const filters: Array<Record<string, unknown>> = [
    { query: `labels.type:${SESSION_LABEL} and labels.value:${quoted}`, page: 0, size: 10 },
    { query: `dbotMirrorId:${quoted}`, page: 0, size: 10 },
    { query: `details:${quoted}`, page: 0, size: 10 },
  ];
  // Names repeat across sessions ("Code42 - 3 files …"): take many and keep the one that is ours.
  if (name) filters.push({ name: [name], page: 0, size: 64, sort: [{ field: 'created', asc: false }] });
  return filters;
}

type BatchFilter = (sessions: ReadonlyArray<{ sessionId: string; name?: string | null | undefined }>) => Record<string, unknown> | null;

/** The batch forms of sessionSearchFilters: one filter for many sessions. */
function batchSearchFilters(): BatchFilter[] {
  const size = (n: number): number => Math.min(1_000, Math.max(10, n * 3));
  const any = (field: string, list: ReadonlyArray<{ sessionId: string }>): string => list.map((s) => `${field}:${JSON.stringify(s.sessionId)}`).join(' or ');
  const filters: BatchFilter[] = [
    (list) => ({ query: `labels.type:${SESSION_LABEL} and (${any('labels.value', list)})`, page: 0, size: size(list.length) }),
    (list) => ({ query: any('dbotMirrorId', list), page: 0, size: size(list.length) }),
    (list) => ({ query: any('details', list), page: 0, size: size(list.length) }),
  ];
  filters.push((list) => {
    const names = [...new Set(list.map((s) => s.name).filter((n): n is string => !!n))];
    // Names repeat across sessions: take many, newest first, and keep those that are ours.
    return names.length === 0 ? null : { name: names, page: 0, size: 1_000, sort: [{ field: 'created', asc: false }] };
  });
  return filters;
}

/** Every session id an incident carries (dbotMirrorId, the alert id field, the session label, rawJSON). */
function sessionIdsOf(inc: FoundIncident): Set<string> {
  const ids = new Set<string>();
  if (inc.dbotMirrorId) ids.add(inc.dbotMirrorId);
  const alertId = inc.CustomFields?.code42alertid;
  if (typeof alertId === 'string') ids.add(alertId);
  for (const l of inc.labels ?? []) if (l.type === SESSION_LABEL && typeof l.value === 'string') ids.add(l.value);
  const raw = rawSessionId(inc.rawJSON);
  if (raw) ids.add(raw);
  return ids;
}

function isIncidentFor(inc: FoundIncident, sessionId: string): boolean {
  if (inc.dbotMirrorId === sessionId) return true;
  if (inc.CustomFields && inc.CustomFields.code42alertid === sessionId) return true;
  if ((inc.labels ?? []).some((l) => l.type === SESSION_LABEL && l.value === sessionId)) return true;
  return rawSessionId(inc.rawJSON) === sessionId;
}

/** The `sessionId` of an incident's rawJSON (the session as forwarded), if it has one. */
function rawSessionId(rawJSON: unknown): string | undefined {
  if (typeof rawJSON !== 'string' || rawJSON === '') return undefined;
  try {
    const raw = parseUntrustedJson(rawJSON) as { sessionId?: unknown } | null;
    return raw && typeof raw.sessionId === 'string' ? raw.sessionId : undefined;
  } catch {
    return undefined;
  }
}

/** XSOAR's error body `{id, status, title, detail, error}` as one quoted line. */
export function describeXsoarError(bodyText: string): string {
  try {
    const body = parseUntrustedJson(bodyText) as { detail?: unknown; error?: unknown; title?: unknown } | null;
    if (body && typeof body === 'object') {
      const parts = [body.detail, body.error].filter((p): p is string => typeof p === 'string' && p.trim() !== '');
      if (parts.length > 0) return parts.map((p) => p.replace(/\s+/g, ' ').trim()).join(' — ');
      if (typeof body.title === 'string') return body.title;
    }
  } catch {
    // not JSON: fall through to the text excerpt
  }
  const text = bodyText.replace(/<[^>]*>/g, ' ').replace(/\s+/g, ' ').trim();
  return text.length > 200 ? `${text.slice(0, 200)}…` : text || '(empty body)';
}

function retryAfterMs(header: string | string[] | undefined): number {
  const value = Array.isArray(header) ? header[0] : header;
  if (!value) return 10_000;
  const seconds = Number(value);
  if (Number.isFinite(seconds)) return Math.max(0, seconds * 1000);
  const date = Date.parse(value);
  return Number.isFinite(date) ? Math.max(0, date - Date.now()) : 10_000;
}

function translateError(err: unknown, endpoint: string, ambiguousOnFailure: boolean): Error {
  if (err instanceof ResponseTooLargeError) {
    const message = `XSOAR ${endpoint} refused: ${err.message} (XSOAR_MAX_RESPONSE_SIZE)`;
    return ambiguousOnFailure ? new XsoarUnavailableError(message, true, undefined, { cause: err }) : new XsoarResponseTooLargeError(message);
  }
  if (err instanceof XsoarResponseError) return err;
  if (err instanceof HTTPError) {
    const status = err.response.statusCode;
    const body = String(err.response.body ?? '');
    if (status === 401 || status === 403) {
      return new XsoarAuthError(
        `XSOAR refused the API key (HTTP ${status}: ${describeXsoarError(body)}): check XSOAR_API_KEY, and for XSOAR 8 XSOAR_API_KEY_ID and XSOAR_AUTH_TYPE`,
      );
    }
    if (status === 429) return new XsoarRateLimitedError(retryAfterMs(err.response.headers['retry-after']));
    if (status >= 500) {
      return new XsoarUnavailableError(`XSOAR ${endpoint} failed with HTTP ${status}: ${describeXsoarError(body)}`, ambiguousOnFailure, status, { cause: err });
    }
    return new XsoarRejectedError(status, describeXsoarError(body));
  }
  if (err instanceof RequestError) {
    const code = err.code;
    const certificateError = tlsErrorCode(err);
    if (certificateError) return new XsoarTlsError(certificateError, { cause: err });
    const ambiguous = ambiguousOnFailure && !NOT_SENT_CODES.has(code);
    return new XsoarUnavailableError(`XSOAR ${endpoint} failed: ${err.message} (${code})`, ambiguous, undefined, { cause: err });
  }
  return err instanceof Error ? err : new Error(String(err));
}
