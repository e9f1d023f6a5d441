/**
 * Code42's words for severities and states, and the numbers the sessions API uses.
 * Sessions carry severities as integers 0–4 ("0 indicates no risk, 1 = low, 2 = moderate,
 * 3 = high, 4 = critical"); operators configure them as words.
 */
export const SEVERITY_WORDS = ['critical', 'high', 'moderate', 'low'] as const;
export type SeverityWord = (typeof SEVERITY_WORDS)[number];

const SEVERITY_NUMBERS: Record<SeverityWord, number> = { low: 1, moderate: 2, high: 3, critical: 4 };

/** The Code42 name of each session severity, as the stock XSOAR integration spells it (index = severity). */
export const SESSION_SEVERITY_NAMES = ['NO RISK', 'LOW', 'MODERATE', 'HIGH', 'CRITICAL'] as const;

export function severityNumber(word: SeverityWord): number {
  return SEVERITY_NUMBERS[word];
}

export function severityName(n: number): string {
  return SESSION_SEVERITY_NAMES[n] ?? 'NO RISK';
}

/**
 * Session states the sessions API documents. The API may add more ("clients should be tolerant of
 * additional values"): an unknown state is a valid session outside the filter unless the operator
 * names it in ALERT_STATES.
 */
export const SESSION_STATES = [
  'OPEN',
  'OPEN_NEW_DATA',
  'IN_PROGRESS',
  'CLOSED',
  'CLOSED_TP',
  'CLOSED_TP_BENIGN',
  'CLOSED_FP',
] as const;
export type KnownSessionState = (typeof SESSION_STATES)[number];
/** A known state, or any other upper-snake name the API may send. */
export type SessionState = KnownSessionState | (string & {});

/** How a state name is spelled on the wire: upper-case words joined by underscores. */
export const STATE_NAME_PATTERN = /^[A-Z][A-Z0-9]*(?:_[A-Z0-9]+)*$/;

export function isKnownState(state: string): state is KnownSessionState {
  return (SESSION_STATES as readonly string[]).includes(state);
}
