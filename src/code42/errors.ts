import { ForwarderError, type ErrorFacts } from '../infra/errors.js';

/** Code42 refused the API client's credentials, or a fresh token. Not fixed by retrying. */
export class Code42AuthError extends ForwarderError {
  constructor(message: string, options?: { cause?: unknown; code?: string }) {
    super(options?.code ?? 'CODE42_AUTH', message, options);
  }

  override get facts(): ErrorFacts {
    return { nature: 'credentials', failure: 'auth', upstream: 'code42' };
  }
}

/** Code42's certificate is not trusted (private CA or TLS-inspecting proxy without CODE42_CA_FILE). Handled like bad credentials. */
export class Code42TlsError extends Code42AuthError {
  /** `certificateError` is Node's code, e.g. DEPTH_ZERO_SELF_SIGNED_CERT. */
  constructor(certificateError: string, options?: { cause?: unknown }) {
    super(`Code42's TLS certificate is not trusted (${certificateError}): give its CA with CODE42_CA_FILE`, { ...options, code: 'CODE42_TLS' });
  }
}

/** A Code42 response that is not what the API documents: not JSON, or a field of the wrong type. */
export class Code42ResponseError extends ForwarderError {
  /** Dotted path of the offending field, when one is known. */
  readonly field: string | undefined;
  readonly sessionId: string | undefined;

  constructor(message: string, details: { field?: string; sessionId?: string; cause?: unknown } = {}) {
    super('CODE42_BAD_RESPONSE', message, { cause: details.cause });
    this.field = details.field;
    this.sessionId = details.sessionId;
  }

  override get facts(): ErrorFacts {
    return { nature: 'permanent', failure: 'invalid_input', upstream: 'code42' };
  }
}

/** An HTTP failure talking to Code42 after got's own retries (5xx, 429 past the cap, network). */
export class Code42RequestError extends ForwarderError {
  readonly statusCode: number | undefined;
  readonly endpoint: string;
  /** The error answer was not JSON (an HTML page from a proxy or load balancer, say). */
  readonly foreignBody: boolean;

  constructor(endpoint: string, message: string, statusCode?: number, options?: { cause?: unknown; foreignBody?: boolean }) {
    super('CODE42_REQUEST', message, options);
    this.endpoint = endpoint;
    this.statusCode = statusCode;
    this.foreignBody = options?.foreignBody ?? false;
  }

  /**
   * No answer, a 5xx or a 408 says Code42 is down. Not a 429: rate limiting is the request budget's and
   * got's business, and an upstream that answers 429 is up (a probe meeting one must not keep a circuit open).
   */
  override get facts(): ErrorFacts {
    const s = this.statusCode;
    return s === undefined || s >= 500 || s === 408
      ? { nature: 'outage', failure: 'transient', upstream: 'code42' }
      : { nature: 'retry', failure: 'unknown', upstream: 'code42' };
  }
}
