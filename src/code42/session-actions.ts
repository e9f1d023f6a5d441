/**
 * The two session writes the state sync needs (code42-api.md §2.1, incydr SDK `sessions/client.py`):
 * `POST /v1/sessions/change-state` `{ids (≤100), newState}` and `POST /v1/sessions/{id}/add-note`
 * `{noteContent (≤2,000 chars)}`. They go through the Incydr client's got instance, so every call
 * waits for the deployment's shared request budget and refreshes an expired token like a read does.
 */
import { HTTPError, RequestError, type Got } from 'got';
import { ForwarderError } from '../infra/errors.js';
import { tlsErrorCode } from '../infra/http.js';
import { Code42AuthError, Code42RequestError, Code42TlsError } from './errors.js';
import type { IncydrClient } from './incydr-client.js';

/** Most session ids per change-state call. */
export const CHANGE_STATE_BATCH = 100;
/** Longest session note Code42 accepts. */
export const NOTE_MAX_CHARS = 2_000;

export interface ChangeStateResult {
  /** Ids whose state was set. */
  changed: string[];
  /** Ids Code42 refused one by one (unknown session, say), with its answer. */
  refused: Array<{ id: string; reason: string }>;
  /** Requests sent. */
  calls: number;
}

/** The session id the permission probe writes to: no session has it, so nothing changes. */
export const WRITE_PROBE_SESSION = 'c42x-permission-probe-no-such-session';

export interface WritePermission {
  allowed: boolean;
  /** The endpoint refused for the permission (when not allowed). */
  endpoint: string;
  detail: string;
}

/** Cuts `text` to Code42's note limit, saying so at the end. */
export function fitNote(text: string): string {
  if (text.length <= NOTE_MAX_CHARS) return text;
  const tail = '… (cut to 2,000 characters)';
  return text.slice(0, NOTE_MAX_CHARS - tail.length) + tail;
}

export class SessionActions {
  private readonly http: Got;

  constructor(client: Pick<IncydrClient, 'authenticatedHttp'>) {
    this.http = client.authenticatedHttp;
  }

  /**
   * Sets `newState` on every id, 100 per call. A batch Code42 refuses with a 4xx (one unknown id
   * fails the whole batch) is retried id by id with `POST /v1/sessions/{id}/change-state`, so one bad
   * id never blocks the other 99.
   */
  async changeState(ids: readonly string[], newState: string, signal?: AbortSignal): Promise<ChangeStateResult> {
    const result: ChangeStateResult = { changed: [], refused: [], calls: 0 };
    for (let i = 0; i < ids.length; i += CHANGE_STATE_BATCH) {
      const batch = ids.slice(i, i + CHANGE_STATE_BATCH);
      result.calls += 1;
      try {
        await this.post('v1/sessions/change-state', 'sessions.changeState', { ids: batch, newState }, signal);
        result.changed.push(...batch);
        continue;
      } catch (err) {
        if (!(err instanceof Code42RequestError && isClientError(err))) throw err;
      }
      for (const id of batch) {
        result.calls += 1;
        try {
          await this.post(`v1/sessions/${encodeURIComponent(id)}/change-state`, 'sessions.changeState', { newState }, signal);
          result.changed.push(id);
        } catch (err) {
          if (!(err instanceof Code42RequestError && isClientError(err))) throw err;
          result.refused.push({ id, reason: err.message });
        }
      }
    }
    return result;
  }

  /** Adds a note to the session (cut to 2,000 characters). */
  async addNote(sessionId: string, note: string, signal?: AbortSignal): Promise<void> {
    await this.post(`v1/sessions/${encodeURIComponent(sessionId)}/add-note`, 'sessions.addNote', { noteContent: fitNote(note) }, signal);
  }

  /**
   * Proves the right to write sessions without changing any: change-state and add-note on a session id
   * that does not exist. A client allowed to write is refused for the id (404, or 400); a read-only one
   * is refused for the permission (403) before the id is looked at. Other failures (5xx, network) say
   * nothing about the permission and are thrown.
   */
  async probeWritePermission(signal?: AbortSignal): Promise<WritePermission> {
    const id = WRITE_PROBE_SESSION;
    const probes: Array<[string, string, unknown]> = [
      ['v1/sessions/change-state', 'sessions.changeState', { ids: [id], newState: 'OPEN' }],
      [`v1/sessions/${encodeURIComponent(id)}/add-note`, 'sessions.addNote', { noteContent: 'code42-xsoar-forwarder permission check' }],
    ];
    for (const [path, endpoint, body] of probes) {
      try {
        await this.post(path, endpoint, body, signal);
      } catch (err) {
        if (err instanceof Code42AuthError) return { allowed: false, endpoint, detail: err.message };
        if (err instanceof Code42RequestError && err.statusCode !== undefined && isClientError(err)) continue;
        throw err;
      }
    }
    return { allowed: true, endpoint: '', detail: 'change-state and add-note answer for a session id that does not exist (nothing changed)' };
  }

  private async post(path: string, endpoint: string, json: unknown, signal?: AbortSignal): Promise<void> {
    try {
      await this.http.post(path, { json, context: { endpoint }, ...(signal ? { signal } : {}) });
    } catch (caught) {
      const err = caught instanceof RequestError && caught.cause instanceof ForwarderError ? caught.cause : caught;
      if (err instanceof HTTPError) {
        const status = err.response.statusCode;
        if (status === 401 || status === 403) {
          throw new Code42AuthError(`Code42 refused ${endpoint} with HTTP ${status} even with a fresh token: check that the API client may change sessions`);
        }
        const body = String(err.response.body ?? '').replace(/\s+/g, ' ').trim().slice(0, 160);
        throw new Code42RequestError(endpoint, `Code42 ${endpoint} failed with HTTP ${status}${body ? `: ${body}` : ''}`, status, { cause: err });
      }
      if (err instanceof ForwarderError) throw err;
      const certificateError = tlsErrorCode(err);
      if (certificateError) throw new Code42TlsError(certificateError, { cause: err });
      const code = err instanceof RequestError ? ` (${err.code})` : '';
      throw new Code42RequestError(endpoint, `Code42 ${endpoint} failed: ${(err as Error).message}${code}`, undefined, { cause: err });
    }
  }
}

function isClientError(err: Code42RequestError): boolean {
  return err.statusCode !== undefined && err.statusCode >= 400 && err.statusCode < 500 && err.statusCode !== 429;
}
