import type { Got } from 'got';
import { HTTPError } from 'got';
import { tlsErrorCode } from '../infra/http.js';
import { parseUntrustedJson } from '../infra/safe-json.js';
import { maskUrlCredentials } from '../infra/mask-url.js';
import { Code42AuthError, Code42RequestError, Code42ResponseError, Code42TlsError } from './errors.js';
import { TokenResponseSchema, parseOrThrow } from './schemas.js';

export interface TokenProviderOptions {
  /** got instance for the gateway, without auth hooks (budget and TLS only). */
  http: Got;
  clientId: string;
  clientSecret: string;
  /** Refresh this long before the token expires. @defaultValue 60 s, or a tenth of the lifetime if shorter */
  refreshMarginMs?: number;
  clock?: () => number;
}

interface CachedToken {
  value: string;
  expiresAt: number;
  refreshAt: number;
}

/**
 * Access tokens for the Incydr API client (POST /v1/oauth, HTTP Basic, 15-minute tokens, no refresh
 * token). One refresh is in flight at a time however many callers ask.
 */
export class TokenProvider {
  private cached: CachedToken | undefined;
  private inflight: Promise<string> | undefined;
  private readonly clock: () => number;
  /** Number of tokens fetched so far (for tests and metrics). */
  refreshes = 0;

  constructor(private readonly opts: TokenProviderOptions) {
    this.clock = opts.clock ?? Date.now;
  }

  async getToken(): Promise<string> {
    const now = this.clock();
    if (this.cached && now < this.cached.refreshAt) return this.cached.value;
    this.inflight ??= this.fetchToken().finally(() => {
      this.inflight = undefined;
    });
    return this.inflight;
  }

  /** Forgets `token` if it is still the cached one (after Code42 answered 401 to it). */
  invalidate(token: string): void {
    if (this.cached?.value === token) this.cached = undefined;
  }

  private async fetchToken(): Promise<string> {
    const basic = Buffer.from(`${this.opts.clientId}:${this.opts.clientSecret}`).toString('base64');
    let body: string;
    let contentType: string | undefined;
    let url = 'v1/oauth';
    try {
      const res = await this.opts.http.post('v1/oauth', {
        searchParams: { grant_type: 'client_credentials' },
        headers: { authorization: `Basic ${basic}` },
        body: '',
        context: { endpoint: 'oauth' },
      });
      body = res.body;
      contentType = res.headers['content-type'];
      url = maskUrlCredentials(res.url);
    } catch (err) {
      if (err instanceof HTTPError && (err.response.statusCode === 401 || err.response.statusCode === 400 || err.response.statusCode === 403)) {
        throw new Code42AuthError(
          `Code42 refused the API client credentials (HTTP ${err.response.statusCode} from /v1/oauth): check CODE42_CLIENT_ID and CODE42_CLIENT_SECRET`,
        );
      }
      const certificateError = tlsErrorCode(err);
      if (certificateError) throw new Code42TlsError(certificateError, { cause: err });
      const status = err instanceof HTTPError ? err.response.statusCode : undefined;
      const foreign = err instanceof HTTPError ? notTheApi(err.response.headers['content-type'], maskUrlCredentials(err.response.url)) : '';
      throw new Code42RequestError('oauth', `Code42 token request failed: ${(err as Error).message}${foreign}`, status, { cause: err });
    }
    let parsed: unknown;
    try {
      parsed = parseUntrustedJson(body);
    } catch (err) {
      throw new Code42ResponseError(`Code42 /v1/oauth answered with a body that is not JSON${notTheApi(contentType, url) || ` (content-type ${contentType ?? 'none'} from ${url})`}`, { cause: err });
    }
    const token = parseOrThrow(TokenResponseSchema, parsed, 'token response');
    const now = this.clock();
    const lifetime = token.expires_in * 1000;
    const margin = Math.min(this.opts.refreshMarginMs ?? 60_000, lifetime / 10);
    this.cached = { value: token.access_token, expiresAt: now + lifetime, refreshAt: now + lifetime - margin };
    this.refreshes += 1;
    return token.access_token;
  }
}

/**
 * A hint for an answer that is not the Code42 API's (an HTML login page of the console, a proxy's error
 * page): names its content type and the URL asked, and the setting to look at. Empty for JSON answers.
 */
export function notTheApi(contentType: string | undefined, url: string): string {
  const type = String(contentType ?? '').split(';')[0]?.trim().toLowerCase() ?? '';
  if (type === 'application/json' || type.endsWith('+json')) return '';
  return ` (content-type ${type || 'none'} from ${url}: is CODE42_API_URL the API gateway of your region, e.g. https://api.us.code42.com, not the console URL or a proxy page?)`;
}
