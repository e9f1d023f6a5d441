import { isRedisUrl } from '../infra/redis.js';
import convict from 'convict';
import { lacksUnit, parseDuration, unitlessMessage } from './duration.js';
import { SEVERITY_WORDS, SESSION_STATES, STATE_NAME_PATTERN } from '../code42/vocabulary.js';

/** Splits `a, b,c` (or takes an array from a JSON file) into trimmed, non-empty items. */
function toList(value: unknown): unknown {
  if (Array.isArray(value)) return value.map((v) => (typeof v === 'string' ? v.trim() : v));
  if (typeof value !== 'string') return value;
  return value
    .split(',')
    .map((v) => v.trim())
    .filter((v) => v.length > 0);
}

function assertList(value: unknown, allowed: readonly string[], what: string, normalise: (s: string) => string): void {
  if (!Array.isArray(value) || value.length === 0) throw new Error(`must be a comma-separated list of ${what}`);
  const bad = value.filter((v) => typeof v !== 'string' || !allowed.includes(normalise(v)));
  if (bad.length > 0) throw new Error(`unknown ${what} ${bad.map((b) => JSON.stringify(b)).join(', ')}; allowed: ${allowed.join(', ')}`);
}

/** Rates such as `120/min`, `2/s`, `7200/h`, kept as requests per minute. */
export function parseRate(value: unknown): number | undefined {
  if (typeof value === 'number') return value > 0 ? value : undefined;
  if (typeof value !== 'string') return undefined;
  const m = /^\s*(\d+(?:\.\d+)?)\s*\/\s*(s|sec|second|m|min|minute|h|hour)\s*$/i.exec(value);
  if (!m || m[1] === undefined || m[2] === undefined) return undefined;
  const n = Number(m[1]);
  const unit = m[2].toLowerCase();
  const perMinute = unit.startsWith('s') ? n * 60 : unit.startsWith('h') ? n / 60 : n;
  return perMinute > 0 ? perMinute : undefined;
}

/** Sizes such as `16MB`, `512KB`, `1GB` or a plain number of bytes. */
export function parseSize(value: unknown): number | undefined {
  if (typeof value === 'number') return Number.isInteger(value) && value > 0 ? value : undefined;
  if (typeof value !== 'string') return undefined;
  const m = /^\s*(\d+(?:\.\d+)?)\s*(b|kb|kib|mb|mib|gb|gib)?\s*$/i.exec(value);
  if (!m || m[1] === undefined) return undefined;
  const unit = (m[2] ?? 'b').toLowerCase();
  const factor = unit.startsWith('k') ? 1024 : unit.startsWith('m') ? 1024 ** 2 : unit.startsWith('g') ? 1024 ** 3 : 1;
  const bytes = Math.round(Number(m[1]) * factor);
  return bytes > 0 ? bytes : undefined;
}

/**
 * `a=b, c=d` (or a JSON object) as a map. Keys and values are trimmed; an already-parsed object is
 * returned as it is.
 */
export function parsePairs(value: unknown): Record<string, string> {
  if (value && typeof value === 'object' && !Array.isArray(value)) return value as Record<string, string>;
  const out: Record<string, string> = {};
  if (typeof value !== 'string') return out;
  for (const item of value.split(',')) {
    if (item.trim() === '') continue;
    const eq = item.indexOf('=');
    out[(eq < 0 ? item : item.slice(0, eq)).trim()] = eq < 0 ? '' : item.slice(eq + 1).trim();
  }
  return out;
}

function assertPairs(value: unknown, what: string, checkKey: (k: string) => string | null, checkValue: (v: string) => string | null): void {
  if (typeof value !== 'string' && !(value && typeof value === 'object' && !Array.isArray(value))) throw new Error(`must be a comma list of ${what}`);
  const pairs = parsePairs(value);
  if (Object.keys(pairs).length === 0) throw new Error(`must be a comma list of ${what}`);
  for (const [k, v] of Object.entries(pairs)) {
    const problem = (k === '' ? 'an empty key' : checkKey(k)) ?? (v === '' ? `no value for ${JSON.stringify(k)}` : checkValue(v));
    if (problem) throw new Error(`${problem} (expected ${what})`);
  }
}

const CLOSED_STATES = SESSION_STATES.filter((s) => s.startsWith('CLOSED'));

let registered = false;

/** Registers the project's convict formats once per process. */
export function registerFormats(): void {
  if (registered) return;
  registered = true;
  convict.addFormats({
    'required-string': {
      validate(value: unknown) {
        if (typeof value !== 'string' || value.trim() === '') throw new Error('is required');
      },
    },
    'optional-string': {
      validate(value: unknown) {
        if (value !== null && typeof value !== 'string') throw new Error('must be a string');
      },
    },
    'http-url': {
      validate(value: unknown) {
        if (value === null || value === undefined || value === '') throw new Error('is required');
        if (typeof value !== 'string') throw new Error('must be a URL');
        let url: URL;
        try {
          url = new URL(value);
        } catch {
          throw new Error('must be an absolute http(s) URL');
        }
        if (url.protocol !== 'https:' && url.protocol !== 'http:') throw new Error('must be an http(s) URL');
      },
    },
    'optional-http-url': {
      validate(value: unknown) {
        if (value === null || value === '') return;
        if (typeof value !== 'string') throw new Error('must be a URL');
        try {
          const url = new URL(value);
          if (url.protocol !== 'https:' && url.protocol !== 'http:') throw new Error('bad protocol');
        } catch {
          throw new Error('must be an absolute http(s) URL');
        }
      },
    },
    'redis-url': {
      validate(value: unknown) {
        if (typeof value !== 'string' || !isRedisUrl(value)) {
          throw new Error('must be a redis://, rediss://, redis+sentinel://host:26379,host2:26379/<master> or redis+cluster://host1:7000,host2:7001 URL');
        }
      },
    },
    duration: {
      validate(value: unknown) {
        if (lacksUnit(value)) throw new Error(unitlessMessage(value));
        if (typeof value !== 'number' || !Number.isFinite(value) || value < 0) {
          throw new Error('must be a duration such as 500ms, 30s, 5m, 2h or 1d');
        }
      },
      coerce: (value: unknown) => parseDuration(value) ?? value,
    },
    'positive-duration': {
      validate(value: unknown) {
        if (lacksUnit(value)) throw new Error(unitlessMessage(value));
        if (typeof value !== 'number' || !Number.isFinite(value) || value <= 0) {
          throw new Error('must be a duration above zero such as 500ms, 30s, 5m, 2h or 1d');
        }
      },
      coerce: (value: unknown) => parseDuration(value) ?? value,
    },
    rate: {
      validate(value: unknown) {
        if (typeof value !== 'number' || !(value > 0)) throw new Error('must be a rate such as 120/min, 2/s or 7200/h');
      },
      coerce: (value: unknown) => parseRate(value) ?? value,
    },
    size: {
      validate(value: unknown) {
        if (typeof value !== 'number' || !Number.isInteger(value) || value <= 0) throw new Error('must be a size such as 16MB, 512KB or a number of bytes');
      },
      coerce: (value: unknown) => parseSize(value) ?? value,
    },
    'severity-list': {
      validate(value: unknown) {
        assertList(value, SEVERITY_WORDS, 'severity', (s) => s.toLowerCase());
      },
      coerce: (value: unknown) => toList(value),
    },
    'state-list': {
      validate(value: unknown) {
        // Known states, or any upper-snake name: Incydr adds states over time and the operator may want one.
        if (!Array.isArray(value) || value.length === 0) throw new Error('must be a comma-separated list of state');
        const bad = value.filter((v) => typeof v !== 'string' || !STATE_NAME_PATTERN.test(v.toUpperCase()));
        if (bad.length > 0) {
          throw new Error(`invalid state ${bad.map((b) => JSON.stringify(b)).join(', ')}: expected upper-snake names such as ${SESSION_STATES.join(', ')}`);
        }
      },
      coerce: (value: unknown) => toList(value),
    },
    'close-reason-map': {
      validate(value: unknown) {
        assertPairs(value, 'reason=STATE pairs', () => null, (v) => ((CLOSED_STATES as readonly string[]).includes(v) ? null : `unknown closed state ${JSON.stringify(v)}; allowed: ${CLOSED_STATES.join(', ')}`));
      },
    },
    'state-close-map': {
      validate(value: unknown) {
        assertPairs(value, 'STATE=reason pairs', (k) => ((CLOSED_STATES as readonly string[]).includes(k) ? null : `unknown closed state ${JSON.stringify(k)}; allowed: ${CLOSED_STATES.join(', ')}`), () => null);
      },
    },
    'positive-int': {
      validate(value: unknown) {
        if (typeof value !== 'number' || !Number.isInteger(value) || value < 1) throw new Error('must be a whole number of at least 1');
      },
      coerce: (value: unknown) => (typeof value === 'string' && /^\s*\d+\s*$/.test(value) ? Number(value) : value),
    },
    'nonneg-int': {
      validate(value: unknown) {
        if (typeof value !== 'number' || !Number.isInteger(value) || value < 0) throw new Error('must be a whole number of at least 0');
      },
      coerce: (value: unknown) => (typeof value === 'string' && /^\s*\d+\s*$/.test(value) ? Number(value) : value),
    },
    'strict-boolean': {
      validate(value: unknown) {
        if (typeof value !== 'boolean') throw new Error('must be true or false');
      },
      coerce: (value: unknown) => {
        if (typeof value !== 'string') return value;
        const v = value.trim().toLowerCase();
        if (['true', '1', 'yes', 'on'].includes(v)) return true;
        if (['false', '0', 'no', 'off'].includes(v)) return false;
        return value;
      },
    },
  });
}
