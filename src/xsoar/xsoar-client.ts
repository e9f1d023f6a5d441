import { HTTPError, RequestError, type Got, type Options } from 'got';
import { ResponseTooLargeError, createHttpClient, tlsErrorCode, withBodyLimit, type HttpClientOptions } from '../infra/http.js';
import type { RequestObserver } from '../infra/request-observer.js';
import { parseUntrustedJson } from '../infra/safe-json.js';
import { authHeaders, type XsoarCredentials } from './auth.js';
import { XsoarAuthError, XsoarRateLimitedError, XsoarRejectedError, XsoarResponseError, XsoarTlsError, XsoarUnavailableError } from './errors.js';
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
            (options) => {
              // Fresh headers for every attempt: an advanced key's nonce must never repeat.
              for (const [name, value] of Object.entries(authHeaders(creds))) options.headers[name] = value;
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

  /** POST /incident. Resolves with the new incident's id. */
  async createIncident(body: IncidentRequest, signal?: AbortSignal): Promise<{ id: string }> {
    const parsed = await this.postJson('incident', 'incident.create', body, { signal, ambiguousOnFailure: true });
    const id = (parsed as { id?: unknown } | null)?.id;
    if ((typeof id === 'string' && id !== '') || typeof id === 'number') return { id: String(id) };
    // A 2xx without an id: the incident may or may not exist, so the next attempt must search first.
    const partial = (parsed as { error?: unknown } | null)?.error;
    throw new XsoarUnavailableError(
      `XSOAR answered the create without an incident id${partial ? `: ${String(partial)}` : ''}`,
      true,
    );
  }

  /**
   * Incidents of `incidentType` made for `sessionId`: searched by dbotMirrorId, then by the session
   * label (servers that drop a client-supplied dbotMirrorId). Each hit is checked client-side.
   */
  async findIncidentsForSession(sessionId: string, incidentType: string, signal?: AbortSignal): Promise<FoundIncident[]> {
    const quoted = JSON.stringify(sessionId);
    for (const query of [`dbotMirrorId:${quoted}`, `${SESSION_LABEL}:${quoted}`]) {
      const hits = await this.search({ query, page: 0, size: 10 }, signal);
      const mine = hits.filter((inc) => isIncidentFor(inc, sessionId) && (!inc.type || inc.type === incidentType || inc.type === 'Unclassified'));
      if (mine.length > 0) return mine;
    }
    return [];
  }

  async search(filter: Record<string, unknown>, signal?: AbortSignal): Promise<FoundIncident[]> {
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
    opts: { method: 'GET' | 'POST'; body?: string; signal?: AbortSignal | undefined; ambiguousOnFailure: boolean },
  ): Promise<unknown> {
    for (let i = 0; i < this.prefixes.length; i++) {
      const prefix = this.prefixes[i] as string;
      try {
        const res = await withBodyLimit(
          this.http(`${prefix}${path}`, {
            method: opts.method,
            ...(opts.body !== undefined ? { body: opts.body } : {}),
            ...(opts.signal ? { signal: opts.signal } : {}),
            context: { endpoint },
          }),
          this.maxResponseBytes,
        );
        if (i > 0) this.prefixes = this.prefixes.slice(i);
        try {
          return parseUntrustedJson(res.body);
        } catch {
          throw new XsoarResponseError(`XSOAR ${endpoint} answered with a body that is not JSON (content-type ${res.headers['content-type'] ?? 'none'}): is XSOAR_URL the API URL?`);
        }
      } catch (err) {
        // A 404 on the documented public prefix: this server has the path under /xsoar only.
        if (err instanceof HTTPError && err.response.statusCode === 404 && i + 1 < this.prefixes.length) continue;
        throw translateError(err, endpoint, opts.ambiguousOnFailure);
      }
    }
    throw new XsoarResponseError(`XSOAR has no ${path} endpoint under any known prefix`);
  }
}

function isIncidentFor(inc: FoundIncident, sessionId: string): boolean {
  if (inc.dbotMirrorId === sessionId) return true;
  if (inc.CustomFields && inc.CustomFields.code42alertid === sessionId) return true;
  return (inc.labels ?? []).some((l) => l.type === SESSION_LABEL && l.value === sessionId);
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
    return ambiguousOnFailure ? new XsoarUnavailableError(message, true, undefined, { cause: err }) : new XsoarResponseError(message);
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
