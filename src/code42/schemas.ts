/**
 * What Code42 responses must look like before anything downstream uses them.
 *
 * The rule at this boundary: validate what the daemon reads, keep everything else as it came (the
 * incident's rawJSON carries the whole session), and when a field it reads is absent, degrade the way
 * the stock integration does rather than refuse. The Incydr SDK marks almost every field Optional and
 * says clients must tolerate new enum values, so a missing name, a null time or a state this daemon
 * has never heard of is data, not an error. What stays an error, because nothing sensible can be made
 * without it: no `sessionId`, no usable `beginTime`, a read field of the wrong type, a body that is not
 * a JSON object, a forbidden key. Wire formats: code42-api.md §1a, §2.5, §6; stock logic: xsoar-api.md §7.5.
 */
import { z } from 'zod';
import { Code42ResponseError } from './errors.js';

const nullishString = z.string().nullish();
const epochMs = z.number().int().nonnegative();

/** Epoch ms as a number, or as a string of digits (some gateways and proxies stringify large numbers). */
const epochMsLoose = z.union([epochMs, z.string().regex(/^\s*\d{1,16}\s*$/, 'expected epoch milliseconds').transform((s) => Number(s.trim()))]);

export const TokenResponseSchema = z.looseObject({
  access_token: z.string().min(1),
  token_type: z.string().optional(),
  expires_in: z.number().positive(),
});
export type TokenResponse = z.infer<typeof TokenResponseSchema>;

const ScoreSchema = z.looseObject({
  score: z.number().nullish(),
  // Null on a history entry: that entry says nothing about severity (SDK: Optional[int]).
  severity: z.number().int().min(0).max(4).nullish(),
  sourceTimestamp: z.number().nullish(),
});

/** One entry of the state history. `state` is deprecated in favour of `stateV2`; either may be missing. */
const StateSchema = z.looseObject({
  state: nullishString,
  stateV2: nullishString,
  sourceTimestamp: epochMsLoose.nullish(),
  userId: nullishString,
});
export type StateEntry = z.infer<typeof StateSchema>;

const TriggeredAlertSchema = z.looseObject({
  alertId: nullishString,
  // Null: that alert has no rule to name (the SDK marks it Optional).
  ruleId: nullishString,
  ruleName: nullishString,
  lessonId: nullishString,
});

export const SessionSchema = z.looseObject({
  sessionId: z.string().min(1),
  beginTime: epochMsLoose,
  tenantId: nullishString,
  actorId: nullishString,
  actorName: nullishString,
  type: nullishString,
  endTime: epochMsLoose.nullish(),
  firstObserved: epochMsLoose.nullish(),
  lastUpdated: epochMsLoose.nullish(),
  noRiskEvents: z.number().nullish(),
  lowEvents: z.number().nullish(),
  moderateEvents: z.number().nullish(),
  highEvents: z.number().nullish(),
  criticalEvents: z.number().nullish(),
  notes: z.array(z.unknown()).nullish(),
  riskIndicators: z.array(z.unknown()).nullish(),
  scores: z.array(ScoreSchema).nullish(),
  states: z.array(StateSchema).nullish(),
  triggeredAlerts: z.array(TriggeredAlertSchema).nullish(),
  exfiltrationSummary: nullishString,
  contextSummary: nullishString,
});
export type Session = z.infer<typeof SessionSchema>;

export const SessionPageSchema = z.looseObject({
  items: z.array(z.unknown()),
  // Absent on some answers (the SDK's model has it Optional and pages by short page instead).
  totalCount: z.number().int().nonnegative().nullish(),
});

/**
 * A v2 file event: validated loosely, since the incident only copies and flattens it. `@timestamp`
 * arrives as an ISO string, or as epoch milliseconds from some tenants; it is kept as ISO.
 */
export const FileEventSchema = z.looseObject({
  '@timestamp': z
    .union([z.string(), z.number().finite()])
    .nullish()
    .transform((t) => (typeof t === 'number' || (typeof t === 'string' && /^\d{10,16}$/.test(t)) ? isoFromEpochMs(Number(t)) : t)),
  event: z.looseObject({ id: nullishString, action: nullishString }).nullish(),
});
export type FileEvent = z.infer<typeof FileEventSchema>;

export const SessionEventsSchema = z.looseObject({
  queryResult: z.looseObject({
    fileEvents: z.array(FileEventSchema).nullish(),
    totalCount: z.number().int().nonnegative().nullish(),
    nextPgToken: nullishString,
  }),
});

/** `name` may be null or missing (SDK: Optional); the incident then falls back to the session's `actorName`, then the actor id. */
export const ActorSchema = z.looseObject({ actorId: nullishString, name: nullishString });
export type Actor = z.infer<typeof ActorSchema>;

export const RuleSchema = z.looseObject({ id: nullishString, name: nullishString });
export type Rule = z.infer<typeof RuleSchema>;

function isoFromEpochMs(ms: number): string {
  const d = new Date(ms);
  return Number.isNaN(d.getTime()) ? String(ms) : d.toISOString();
}

/**
 * The current entry of a state history, as the stock integration picks it:
 * `max(states, key=sourceTimestamp)`. Python's max returns the FIRST of equal keys, so of two entries
 * with the same time the earlier one in the list wins. An entry without a time ranks below every timed
 * one, and among entries without a time the list order decides the same way (the first wins).
 */
export function latestState<T extends { sourceTimestamp?: number | null | undefined }>(states: readonly T[] | null | undefined): T | undefined {
  let latest: T | undefined;
  let latestKey = Number.NEGATIVE_INFINITY;
  for (const s of states ?? []) {
    const key = typeof s.sourceTimestamp === 'number' && Number.isFinite(s.sourceTimestamp) ? s.sourceTimestamp : Number.MIN_SAFE_INTEGER;
    if (!latest || key > latestKey) {
      latest = s;
      latestKey = key;
    }
  }
  return latest;
}

/** The state value of one history entry: `state` as the stock integration shows it, `stateV2` when `state` is absent. */
export function stateOf(entry: { state?: string | null | undefined; stateV2?: string | null | undefined } | undefined): string | undefined {
  return entry?.state || entry?.stateV2 || undefined;
}

/** The session's current state (see latestState and stateOf); undefined when it has no state history. */
export function currentState(session: Pick<Session, 'states'>): string | undefined {
  return stateOf(latestState(session.states));
}

/** Every name the current state goes by (`state` and `stateV2` can differ while the API migrates). */
export function currentStateNames(session: Pick<Session, 'states'>): string[] {
  const latest = latestState(session.states);
  return [latest?.state, latest?.stateV2].filter((s): s is string => typeof s === 'string' && s.length > 0);
}

/** Highest severity in the session's score history (what the stock integration reports); 0 (no risk) without scores. */
export function currentSeverity(session: Pick<Session, 'scores'>): number {
  return (session.scores ?? []).reduce((max, s) => (typeof s.severity === 'number' ? Math.max(max, s.severity) : max), 0);
}

function formatPath(path: ReadonlyArray<PropertyKey>): string {
  return path.reduce<string>((acc, part) => (typeof part === 'number' ? `${acc}[${part}]` : acc ? `${acc}.${String(part)}` : String(part)), '');
}

/**
 * Parses `value` with `schema`, or throws a Code42ResponseError naming the first bad field
 * (and the session id, when the value has one).
 */
export function parseOrThrow<T>(schema: z.ZodType<T>, value: unknown, what: string): T {
  const result = schema.safeParse(value);
  if (result.success) return result.data;
  const issue = result.error.issues[0];
  const field = issue ? formatPath(issue.path) : '';
  const sessionId =
    value && typeof value === 'object' && typeof (value as { sessionId?: unknown }).sessionId === 'string'
      ? (value as { sessionId: string }).sessionId
      : undefined;
  const where = sessionId ? `${what} ${sessionId}` : what;
  const problem = issue ? issue.message : 'invalid';
  throw new Code42ResponseError(`${where}: field ${field || '(root)'}: ${problem}`, {
    field,
    ...(sessionId ? { sessionId } : {}),
  });
}
