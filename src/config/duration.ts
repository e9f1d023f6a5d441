const UNITS: Record<string, number> = { ms: 1, s: 1_000, m: 60_000, h: 3_600_000, d: 86_400_000 };
const DURATION = /^(\d+(?:\.\d+)?)\s*(ms|s|m|h|d)$/;

/**
 * Parses `500ms`, `30s`, `5m`, `2h`, `1d` into milliseconds; a number (a JSON file, the schema's
 * defaults) is taken as milliseconds. A string without a unit (`30`) is refused: operators mean
 * seconds as often as milliseconds. Returns undefined for anything else so callers can report the key.
 */
export function parseDuration(value: unknown): number | undefined {
  if (typeof value === 'number') return Number.isFinite(value) && value >= 0 ? Math.round(value) : undefined;
  if (typeof value !== 'string') return undefined;
  const text = value.trim().toLowerCase();
  const m = DURATION.exec(text);
  if (!m || m[1] === undefined || m[2] === undefined) return undefined;
  const unit = UNITS[m[2]];
  return unit === undefined ? undefined : Math.round(Number(m[1]) * unit);
}

/** Formats milliseconds back to the shortest exact unit, for logs and `config` output. */
export function formatDuration(ms: number): string {
  for (const [unit, size] of [['d', 86_400_000], ['h', 3_600_000], ['m', 60_000], ['s', 1_000]] as const) {
    if (ms >= size && ms % size === 0) return `${ms / size}${unit}`;
  }
  return `${ms}ms`;
}

/** True for a duration written without its unit (`30`), which `parseDuration` refuses. */
export function lacksUnit(value: unknown): value is string {
  return typeof value === 'string' && /^\s*\d+(?:\.\d+)?\s*$/.test(value);
}

/** The configuration error for a duration without a unit: "30: give a unit, e.g. 30s". */
export function unitlessMessage(value: string): string {
  const n = value.trim();
  return `${n}: give a unit, e.g. ${n}s (ms, s, m, h or d)`;
}
