import assert from 'node:assert/strict';
import { ConfigError, loadConfig } from '../../src/config/index.js';

/** The smallest valid environment: the required keys, and a Redis nobody listens on. */
export const VALID: Readonly<Record<string, string>> = {
  CODE42_API_URL: 'https://api.us.code42.com',
  CODE42_CLIENT_ID: 'key-abc',
  CODE42_CLIENT_SECRET: 'c0de42-s3cret-value',
  XSOAR_URL: 'https://xsoar.example.com',
  XSOAR_API_KEY: 'xsoar-key-value',
  REDIS_URL: 'redis://127.0.0.1:1',
};

/** The ConfigError lines loading this environment (and file) gives; none when it loads. */
export function problemsOf(env: Record<string, string>, file?: string): string[] {
  try {
    loadConfig({ env, ...(file ? { file } : {}) });
  } catch (err) {
    assert.ok(err instanceof ConfigError, `expected ConfigError, got ${String(err)}`);
    return err.problems;
  }
  return [];
}
