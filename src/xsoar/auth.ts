import { createHash, randomInt } from 'node:crypto';

const ALNUM = 'ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789';

export interface XsoarCredentials {
  apiKey: string;
  /** XSOAR 8 key ID; absent for XSOAR 6. */
  apiKeyId: string | null;
  authType: 'standard' | 'advanced';
}

/**
 * Headers that authenticate one request. XSOAR 6: the key itself. XSOAR 8 standard: the key plus its
 * ID. XSOAR 8 advanced: sha256(key + nonce + timestamp) with a fresh 64-character nonce and the time
 * in ms, so it must be computed again for every request and every retry.
 */
export function authHeaders(creds: XsoarCredentials, now: number = Date.now()): Record<string, string> {
  if (!creds.apiKeyId) return { authorization: creds.apiKey };
  if (creds.authType === 'standard') return { authorization: creds.apiKey, 'x-xdr-auth-id': creds.apiKeyId };
  let nonce = '';
  for (let i = 0; i < 64; i++) nonce += ALNUM[randomInt(ALNUM.length)];
  const timestamp = String(now);
  const hash = createHash('sha256').update(`${creds.apiKey}${nonce}${timestamp}`, 'utf8').digest('hex');
  return {
    authorization: hash,
    'x-xdr-auth-id': creds.apiKeyId,
    'x-xdr-nonce': nonce,
    'x-xdr-timestamp': timestamp,
  };
}
