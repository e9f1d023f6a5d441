import { readFileSync } from 'node:fs';
import { got, RequestError, type CancelableRequest, type Got, type ExtendOptions } from 'got';
import { HttpProxyAgent, HttpsProxyAgent } from 'hpagent';

export interface HttpClientOptions {
  /** Base URL every relative request path is resolved against. */
  baseUrl: string;
  /** Total time limit of one attempt. */
  timeoutMs: number;
  /** PEM file of extra CA certificates for this upstream only. */
  caFile?: string | null;
  /** Skip certificate verification for this upstream only. @defaultValue false */
  insecure?: boolean;
  /** Proxy URL (HTTPS_PROXY); requests to hosts matched by `noProxy` go direct. */
  proxy?: string | null;
  noProxy?: string | null;
}

/** Certificate errors: a configuration problem (missing CA), never fixed by retrying. */
const TLS_ERROR_CODES = new Set([
  'DEPTH_ZERO_SELF_SIGNED_CERT',
  'SELF_SIGNED_CERT_IN_CHAIN',
  'UNABLE_TO_VERIFY_LEAF_SIGNATURE',
  'UNABLE_TO_GET_ISSUER_CERT_LOCALLY',
  'UNABLE_TO_GET_ISSUER_CERT',
  'CERT_HAS_EXPIRED',
  'CERT_UNTRUSTED',
  'ERR_TLS_CERT_ALTNAME_INVALID',
]);

/** The certificate error code when `err` is got's report of an untrusted certificate. */
export function tlsErrorCode(err: unknown): string | undefined {
  return err instanceof RequestError && TLS_ERROR_CODES.has(err.code) ? err.code : undefined;
}

/** True when `host` is matched by a NO_PROXY list (`*`, exact names, `.suffix` or `suffix` domain matches, optional :port). */
export function bypassesProxy(url: URL, noProxy: string | null | undefined): boolean {
  if (!noProxy) return false;
  const host = url.hostname.toLowerCase();
  const port = url.port || (url.protocol === 'https:' ? '443' : '80');
  return noProxy
    .split(/[\s,]+/)
    .map((e) => e.trim().toLowerCase())
    .filter((e) => e.length > 0)
    .some((entry) => {
      if (entry === '*') return true;
      let name = entry;
      const m = /^(.*):(\d+)$/.exec(entry);
      if (m && m[1] !== undefined && m[2] !== undefined) {
        if (m[2] !== port) return false;
        name = m[1];
      }
      name = name.replace(/^\*?\./, '');
      return host === name || host.endsWith(`.${name}`);
    });
}

/**
 * The got options every upstream shares: base URL, timeout, TLS trust and proxy agent.
 * Retries, hooks and auth are added by each upstream's client.
 */
export function baseHttpOptions(opts: HttpClientOptions): ExtendOptions {
  const base = new URL(opts.baseUrl.endsWith('/') ? opts.baseUrl : `${opts.baseUrl}/`);
  const ca = opts.caFile ? readFileSync(opts.caFile, 'utf8') : undefined;
  const useProxy = opts.proxy && !bypassesProxy(base, opts.noProxy);
  const agent = useProxy
    ? base.protocol === 'https:'
      ? { https: new HttpsProxyAgent({ keepAlive: true, proxy: opts.proxy as string, ...(ca ? { ca } : {}) }) }
      : { http: new HttpProxyAgent({ keepAlive: true, proxy: opts.proxy as string }) }
    : undefined;
  return {
    prefixUrl: base.toString(),
    timeout: { request: opts.timeoutMs, connect: Math.min(opts.timeoutMs, 10_000) },
    https: {
      rejectUnauthorized: !opts.insecure,
      ...(ca ? { certificateAuthority: ca } : {}),
    },
    ...(agent ? { agent } : {}),
    throwHttpErrors: true,
    responseType: 'text',
    headers: { 'user-agent': 'code42-xsoar-forwarder', accept: 'application/json' },
  };
}

export function createHttpClient(opts: HttpClientOptions, extra: ExtendOptions = {}): Got {
  return got.extend(baseHttpOptions(opts), extra);
}

/** A response body over the configured cap: refused rather than buffered. */
export class ResponseTooLargeError extends Error {
  constructor(readonly limitBytes: number) {
    super(`response body is over the ${formatBytes(limitBytes)} limit`);
    this.name = 'ResponseTooLargeError';
  }
}

export function formatBytes(n: number): string {
  if (n >= 1024 ** 2 && n % 1024 ** 2 === 0) return `${n / 1024 ** 2} MB`;
  if (n >= 1024 && n % 1024 === 0) return `${n / 1024} KB`;
  return `${n} bytes`;
}

/**
 * Awaits a got request but cancels it as soon as the body (announced or received) exceeds `limitBytes`,
 * so one oversized answer cannot exhaust the daemon's memory.
 */
export async function withBodyLimit<T>(request: CancelableRequest<T>, limitBytes: number): Promise<T> {
  let tooLarge = false;
  request.on('response', (response: { headers: Record<string, string | string[] | undefined> }) => {
    const announced = Number(response.headers['content-length']);
    if (Number.isFinite(announced) && announced > limitBytes) {
      tooLarge = true;
      request.cancel();
    }
  });
  request.on('downloadProgress', (progress: { transferred: number }) => {
    if (!tooLarge && progress.transferred > limitBytes) {
      tooLarge = true;
      request.cancel();
    }
  });
  try {
    return await request;
  } catch (err) {
    if (tooLarge) throw new ResponseTooLargeError(limitBytes);
    throw err;
  }
}
