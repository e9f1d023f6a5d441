import { pino, type Logger, type LoggerOptions, type DestinationStream } from 'pino';

/**
 * Paths pino removes from every line. Secrets also never enter log objects on purpose; this is the
 * second line of defence (pino paths are case sensitive, hence both spellings).
 */
export const REDACT_PATHS = [
  'authorization',
  'Authorization',
  '*.authorization',
  '*.Authorization',
  'headers.authorization',
  '*.headers.authorization',
  '*.headers.Authorization',
  'clientSecret',
  '*.clientSecret',
  '*.*.clientSecret',
  'apiKey',
  '*.apiKey',
  '*.*.apiKey',
  'password',
  '*.password',
  'access_token',
  '*.access_token',
  'token',
  '*.token',
];

/**
 * Serializes errors without what got attaches to them: a got RequestError carries its whole
 * `options` (headers included), which must never reach a log line.
 */
export function serializeError(value: unknown, withStack = true): Record<string, unknown> {
  if (!(value instanceof Error)) return { message: String(value) };
  const out: Record<string, unknown> = { type: value.name, message: value.message };
  const extra = value as Error & {
    code?: unknown;
    statusCode?: unknown;
    response?: { statusCode?: number };
    options?: { method?: string; url?: URL | string };
    detail?: unknown;
  };
  if (extra.code !== undefined) out.code = extra.code;
  if (typeof extra.statusCode === 'number') out.statusCode = extra.statusCode;
  else if (extra.response && typeof extra.response.statusCode === 'number') out.statusCode = extra.response.statusCode;
  if (extra.options && extra.options.url) {
    const url = new URL(String(extra.options.url));
    out.request = `${extra.options.method ?? 'GET'} ${url.origin}${url.pathname}`;
  }
  if (value.stack && withStack) out.stack = value.stack;
  if (value.cause !== undefined) out.cause = serializeError(value.cause, withStack);
  return out;
}

export interface LoggerConfig {
  level: string;
  /** Static fields on every line. */
  base?: Record<string, unknown>;
}

/** Levels at which error lines carry stack traces; above them a failure is its type, code and message. */
const STACK_LEVELS = new Set(['debug', 'trace']);

export function createLogger(config: LoggerConfig, destination?: DestinationStream): Logger {
  const withStack = STACK_LEVELS.has(config.level);
  const serialize = (value: unknown): Record<string, unknown> => serializeError(value, withStack);
  const options: LoggerOptions = {
    level: config.level,
    base: { service: 'code42-xsoar-forwarder', ...config.base },
    redact: { paths: REDACT_PATHS, censor: '[REDACTED]' },
    serializers: { err: serialize, error: serialize },
    timestamp: pino.stdTimeFunctions.isoTime,
    formatters: { level: (label) => ({ level: label }) },
  };
  return destination ? pino(options, destination) : pino(options);
}

export type { Logger };
