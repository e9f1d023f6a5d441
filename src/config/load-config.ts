import { readFileSync } from 'node:fs';
import convict from 'convict';
import { ForwarderError } from '../infra/errors.js';
import { distance } from 'fastest-levenshtein';
import { maskRedisUrl } from '../infra/redis.js';
import { effectivePrefix } from '../infra/redis-cluster.js';
import { maskUrlCredentials } from '../infra/mask-url.js';
import { parsePairs, registerFormats } from './formats.js';
import { schema } from './schema.js';
import type { SeverityWord, SessionState } from '../code42/vocabulary.js';

/** The resolved, validated configuration. Durations are milliseconds, rates requests per minute. */
export interface Config {
  code42: {
    apiUrl: string;
    consoleUrl: string;
    clientId: string;
    clientSecret: string;
    severities: SeverityWord[];
    states: SessionState[];
    rateLimit: number;
    timeout: number;
    maxResponseSize: number;
    maxEventsSize: number;
    caFile: string | null;
  };
  poll: { interval: number; firstFetch: number; lookback: number; deepLookback: number; sweepInterval: number; countProbeInterval: number };
  redis: { url: string; prefix: string; password: string | null };
  log: { level: string };
  xsoar: {
    url: string;
    apiKey: string;
    apiKeyId: string | null;
    authType: 'standard' | 'advanced';
    incidentType: string;
    playbookId: string | null;
    createInvestigation: boolean;
    caFile: string | null;
    tlsInsecure: boolean;
    searchSettle: number;
    maxResponseSize: number;
    timeout: number;
    sourceBrand: string;
    maxBody: number;
  };
  enrich: { includeFiles: boolean; maxFileEvents: number; cacheTtl: number };
  worker: { concurrency: number; attempts: number; backoff: number; lockDuration: number; keepCompleted: number };
  proxy: { https: string | null; noProxy: string | null };
  http: { port: number; host: string };
  upstream: { failureThreshold: number; probeInterval: number; probeMax: number; code42Retries: number };
  sync: {
    trackUpdates: boolean;
    stateSync: 'both' | 'to-code42' | 'to-xsoar' | 'off';
    interval: number;
    /** UPDATE_INTERVAL: changes of one session within it make one update and one note. */
    updateInterval: number;
    /** XSOAR close reason → Incydr state; key `*` is any other reason. */
    closeReasonStates: Record<string, string>;
    /** Incydr closed state → XSOAR close reason. */
    stateCloseReasons: Record<string, string>;
    reopenOnNewData: boolean;
  };
}

/** Bad configuration: one readable line per problem, each naming the key and its env variable. */
export class ConfigError extends ForwarderError {
  readonly problems: string[];

  constructor(problems: string[]) {
    super('CONFIG_INVALID', `invalid configuration:\n${problems.map((p) => `  - ${p}`).join('\n')}`);
    this.problems = problems;
  }
}

export interface LoadConfigOptions {
  /** Environment to read; process.env by default. */
  env?: Record<string, string | undefined>;
  /** A JSON config file; FORWARDER_CONFIG from the environment when not given. */
  file?: string;
}

type SchemaNode = { env?: string; doc?: string; default?: unknown; sensitive?: boolean; format?: unknown };

/** Every leaf of the schema as [dotted key, definition], in schema order. */
export function schemaEntries(): Array<[string, SchemaNode]> {
  const out: Array<[string, SchemaNode]> = [];
  const walk = (node: Record<string, unknown>, path: string[]): void => {
    for (const [key, value] of Object.entries(node)) {
      const v = value as Record<string, unknown>;
      if (v && typeof v === 'object' && 'doc' in v) out.push([[...path, key].join('.'), v as SchemaNode]);
      else walk(v, [...path, key]);
    }
  };
  walk(schema as unknown as Record<string, unknown>, []);
  return out;
}

const ENV_BY_KEY = new Map(schemaEntries().map(([key, node]) => [key, node.env]));

function keyLabel(key: string): string {
  const env = ENV_BY_KEY.get(key);
  return env ? `${key} (${env})` : key;
}

/**
 * Rewrites convict's validation lines ("code42.clientId: must be ...") so each names the env variable
 * too, and never echoes a sensitive value.
 */
function problemLines(message: string): string[] {
  return message
    .split('\n')
    .map((line) => line.trim())
    .filter((line) => line.length > 0)
    .map((line) => {
      const undeclared = /^configuration param '([^']+)' not declared in the schema$/.exec(line);
      if (undeclared && undeclared[1]) {
        const near = closestKey(undeclared[1]);
        return `${undeclared[1]}: unknown key (not in the schema; ${near ? `did you mean ${keyLabel(near)}? ` : ''}see the 'config' command)`;
      }
      const m = /^([A-Za-z0-9_.]+): (.*)$/.exec(line);
      if (!m || !m[1] || m[2] === undefined) return line;
      const key = m[1];
      let text = m[2];
      const node = schemaEntries().find(([k]) => k === key)?.[1];
      if (node?.sensitive) text = text.replace(/: value was .*$/, '');
      // "value was null" for a required key says nothing more than "is required".
      text = text.replace(/^is required: value was null$/, 'is required');
      // The unit message already shows the value.
      text = text.replace(/(give a unit, e\.g\. [^:]*): value was .*$/, '$1');
      return `${keyLabel(key)}: ${text}`;
    });
}

/** The schema key an unknown file key most likely meant (a typo, or the right leaf in the wrong section). */
function closestKey(unknown: string): string | undefined {
  const keys = schemaEntries().map(([k]) => k);
  const lower = unknown.toLowerCase();
  const leaf = lower.split('.').pop() ?? lower;
  let best: { key: string; d: number } | undefined;
  for (const key of keys) {
    const k = key.toLowerCase();
    const d = Math.min(distance(lower, k), distance(leaf, k.split('.').pop() ?? k) + 1);
    if (!best || d < best.d) best = { key, d };
  }
  return best && best.d <= Math.max(2, Math.floor(unknown.length / 4)) ? best.key : undefined;
}

/** Marks a secret in every place the configuration is shown (logs, `config --effective`). */
export const REDACTED = '[REDACTED]';

function deriveConsoleUrl(apiUrl: string): string {
  const url = new URL(apiUrl);
  if (url.hostname.startsWith('api.')) url.hostname = `console.${url.hostname.slice(4)}`;
  return url.origin;
}

/**
 * Loads defaults, then the JSON file (FORWARDER_CONFIG), then the environment, and validates strictly:
 * unknown keys, bad values and missing required keys all become ConfigError lines.
 */
export function loadConfig(opts: LoadConfigOptions = {}): Config {
  registerFormats();
  const env = { ...(opts.env ?? process.env) };
  // The lower-case proxy variables are as common as the upper-case ones.
  if (env.HTTPS_PROXY === undefined && env.https_proxy !== undefined) env.HTTPS_PROXY = env.https_proxy;
  if (env.NO_PROXY === undefined && env.no_proxy !== undefined) env.NO_PROXY = env.no_proxy;

  const conf = convict(schema, { env, args: [] });
  const file = opts.file ?? env.FORWARDER_CONFIG;
  if (file) {
    let parsed: unknown;
    try {
      parsed = JSON.parse(readFileSync(file, 'utf8'));
    } catch (err) {
      throw new ConfigError([`FORWARDER_CONFIG: cannot read ${file}: ${(err as Error).message}`]);
    }
    if (!parsed || typeof parsed !== 'object' || Array.isArray(parsed)) {
      throw new ConfigError([`FORWARDER_CONFIG: ${file} must hold a JSON object`]);
    }
    try {
      conf.load(parsed);
    } catch (err) {
      throw new ConfigError(problemLines((err as Error).message));
    }
  }
  try {
    conf.validate({ allowed: 'strict' });
  } catch (err) {
    throw new ConfigError(problemLines((err as Error).message));
  }
  const config = conf.getProperties() as unknown as Config;
  // Spaces around an id, key or URL come from copy-paste (quoted env files), never from the value itself.
  config.code42.clientId = config.code42.clientId.trim();
  config.code42.clientSecret = config.code42.clientSecret.trim();
  config.code42.apiUrl = config.code42.apiUrl.trim();
  config.xsoar.apiKey = config.xsoar.apiKey.trim();
  config.xsoar.url = config.xsoar.url.trim();
  if (config.xsoar.apiKeyId !== null) config.xsoar.apiKeyId = config.xsoar.apiKeyId.trim();
  config.xsoar.incidentType = config.xsoar.incidentType.trim();
  config.code42.severities = config.code42.severities.map((s) => s.toLowerCase()) as SeverityWord[];
  config.code42.states = config.code42.states.map((s) => s.toUpperCase()) as SessionState[];
  config.code42.apiUrl = config.code42.apiUrl.replace(/\/+$/, '');
  config.xsoar.url = config.xsoar.url.replace(/\/+$/, '');
  config.code42.consoleUrl = (config.code42.consoleUrl || deriveConsoleUrl(config.code42.apiUrl)).replace(/\/+$/, '');
  for (const key of ['apiKeyId', 'playbookId', 'caFile'] as const) {
    if (config.xsoar[key] === '') config.xsoar[key] = null;
  }
  if (config.code42.caFile === '') config.code42.caFile = null;
  if (config.proxy.https === '') config.proxy.https = null;
  if (config.redis.password === '') config.redis.password = null;
  // Redis Cluster needs every key of a deployment in one slot: the prefix gets a hash tag there.
  config.redis.prefix = effectivePrefix(config.redis.prefix, config.redis.url);
  if (config.proxy.noProxy === '') config.proxy.noProxy = null;
  config.sync.closeReasonStates = parsePairs(config.sync.closeReasonStates);
  config.sync.stateCloseReasons = parsePairs(config.sync.stateCloseReasons);
  return config;
}

/** The configuration as it may be logged: secrets masked, the Redis password hidden. */
export function describeConfig(config: Config): Record<string, unknown> {
  const copy = structuredClone(config) as unknown as Record<string, Record<string, unknown>>;
  for (const [key, node] of schemaEntries()) {
    if (!node.sensitive) continue;
    const [section, name] = key.split('.') as [string, string];
    const holder = copy[section];
    if (holder && holder[name] !== null && holder[name] !== undefined) holder[name] = REDACTED;
  }
  // A user and password written into an upstream URL are as secret as the key.
  if (copy.xsoar) copy.xsoar.url = maskUrlCredentials(config.xsoar.url);
  if (copy.code42) {
    copy.code42.apiUrl = maskUrlCredentials(config.code42.apiUrl);
    copy.code42.consoleUrl = maskUrlCredentials(config.code42.consoleUrl);
  }
  const redis = copy.redis;
  if (redis) redis.url = maskRedisUrl(config.redis.url);
  if (copy.proxy && config.proxy.https) {
    copy.proxy.https = maskUrlCredentials(config.proxy.https);
  }
  return copy;
}
