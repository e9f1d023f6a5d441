import { ForwarderError, type ErrorFacts } from '../infra/errors.js';

/** XSOAR refused the API key (403 on 6.x, 401 on 8.x). Retrying does not help. */
export class XsoarAuthError extends ForwarderError {
  constructor(message: string, options?: { cause?: unknown; code?: string }) {
    super(options?.code ?? 'XSOAR_AUTH', message, options);
  }

  override get facts(): ErrorFacts {
    return { nature: 'credentials', failure: 'auth', upstream: 'xsoar' };
  }
}

/** XSOAR's certificate is not trusted (self-signed on-prem default without XSOAR_CA_FILE). Handled like a refused key. */
export class XsoarTlsError extends XsoarAuthError {
  /** `certificateError` is Node's code, e.g. DEPTH_ZERO_SELF_SIGNED_CERT. */
  constructor(certificateError: string, options?: { cause?: unknown }) {
    super(`XSOAR's TLS certificate is not trusted (${certificateError}): give its CA with XSOAR_CA_FILE`, { ...options, code: 'XSOAR_TLS' });
  }
}

/** XSOAR refused the request itself (400, 413, other 4xx): the incident as built cannot be created. */
export class XsoarRejectedError extends ForwarderError {
  readonly statusCode: number;
  /** XSOAR's own explanation (`detail` and `error` of its error body), quoted. */
  readonly detail: string;

  constructor(statusCode: number, detail: string) {
    super('XSOAR_REJECTED', `XSOAR rejected the request (HTTP ${statusCode}): ${detail}`);
    this.statusCode = statusCode;
    this.detail = detail;
  }

  override get facts(): ErrorFacts {
    return { nature: 'permanent', failure: 'xsoar_rejected', upstream: 'xsoar' };
  }
}

/** XSOAR answered 429. */
export class XsoarRateLimitedError extends ForwarderError {
  readonly retryAfterMs: number;

  constructor(retryAfterMs: number) {
    super('XSOAR_RATE_LIMITED', `XSOAR is rate limiting (retry after ${retryAfterMs} ms)`);
    this.retryAfterMs = retryAfterMs;
  }

  override get facts(): ErrorFacts {
    return { nature: 'throttled', failure: 'transient', upstream: 'xsoar', retryAfterMs: this.retryAfterMs };
  }
}

/**
 * A transient failure (5xx, timeout, connection error). `ambiguous` is true when XSOAR may have
 * received and stored the request although no success came back.
 */
export class XsoarUnavailableError extends ForwarderError {
  readonly ambiguous: boolean;
  readonly statusCode: number | undefined;

  constructor(message: string, ambiguous: boolean, statusCode?: number, options?: { cause?: unknown }) {
    super('XSOAR_UNAVAILABLE', message, options);
    this.ambiguous = ambiguous;
    this.statusCode = statusCode;
  }

  /** No answer or a 5xx says XSOAR is down; any other status is this request's trouble. */
  override get facts(): ErrorFacts {
    const down = this.statusCode === undefined || this.statusCode >= 500;
    return { nature: down ? 'outage' : 'retry', failure: 'transient', upstream: 'xsoar', maybeSent: this.ambiguous };
  }
}

/** XSOAR answered 2xx with a body this client cannot use. */
export class XsoarResponseError extends ForwarderError {
  constructor(message: string) {
    super('XSOAR_BAD_RESPONSE', message);
  }

  override get facts(): ErrorFacts {
    return { nature: 'retry', failure: 'unknown', upstream: 'xsoar' };
  }
}

/** An XSOAR answer over XSOAR_MAX_RESPONSE_SIZE: refused unread. A search asks again in smaller pages. */
export class XsoarResponseTooLargeError extends XsoarResponseError {}
