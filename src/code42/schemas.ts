/**
 * What Code42 responses must look like before anything downstream uses them. Each schema keeps the
 * fields it does not know (the incident's rawJSON carries the whole session), and checks the types of
 * the fields this daemon reads. Wire formats: code42-api.md §1a, §2.5, §6.
 */
import { z } from 'zod';
import { SESSION_STATES } from './vocabulary.js';
import { Code42ResponseError } from './errors.js';

const nullishString = z.string().nullish();
const epochMs = z.number().int().nonnegative();

export const TokenResponseSchema = z.looseObject({
  access_token: z.string().min(1),
  token_type: z.string().optional(),
  expires_in: z.number().positive(),
});
export type TokenResponse = z.infer<typeof TokenResponseSchema>;

const ScoreSchema = z.looseObject({
  score: z.number().nullish(),
  severity: z.number().int().min(0).max(4),
  sourceTimestamp: z.number().nullish(),
});

const StateSchema = z.looseObject({
  state: z.string().min(1),
  stateV2: nullishString,
  sourceTimestamp: z.number(),
  userId: nullishString,
});

const TriggeredAlertSchema = z.looseObject({
  alertId: nullishString,
  ruleId: z.string().min(1),
  ruleName: nullishString,
  lessonId: nullishString,
});

export const SessionSchema = z
  .looseObject({
    sessionId: z.string().min(1),
    tenantId: nullishString,
    actorId: nullishString,
    actorName: nullishString,
    type: nullishString,
    beginTime: epochMs,
    endTime: epochMs.nullish(),
    firstObserved: epochMs.nullish(),
    lastUpdated: epochMs.nullish(),
    noRiskEvents: z.number().nullish(),
    lowEvents: z.number().nullish(),
    moderateEvents: z.number().nullish(),
    highEvents: z.number().nullish(),
    criticalEvents: z.number().nullish(),
    notes: z.array(z.unknown()).nullish(),
    riskIndicators: z.array(z.unknown()).nullish(),
    scores: z.array(ScoreSchema).min(1),
    states: z.array(StateSchema).min(1),
    triggeredAlerts: z.array(TriggeredAlertSchema),
    exfiltrationSummary: nullishString,
    contextSummary: nullishString,
  })
  .superRefine((s, ctx) => {
    // The current state is the latest entry; it must be one the API documents, or the state filter
    // (and the analyst reading the incident) cannot make sense of it.
    const latest = latestState(s.states);
    if (latest && !(SESSION_STATES as readonly string[]).includes(latest.state)) {
      ctx.addIssue({
        code: 'custom',
        path: ['states', s.states.indexOf(latest), 'state'],
        message: `unknown state ${JSON.stringify(latest.state)}`,
      });
    }
  });
export type Session = z.infer<typeof SessionSchema>;

export const SessionPageSchema = z.looseObject({
  items: z.array(z.unknown()),
  totalCount: z.number().int().nonnegative(),
});

/** A v2 file event: validated loosely, since the incident only copies and flattens it. */
export const FileEventSchema = z.looseObject({
  '@timestamp': nullishString,
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

export const ActorSchema = z.looseObject({ actorId: nullishString, name: z.string() });
export type Actor = z.infer<typeof ActorSchema>;

export const RuleSchema = z.looseObject({ id: nullishString, name: z.string() });
export type Rule = z.infer<typeof RuleSchema>;

export function latestState<T extends { sourceTimestamp: number }>(states: readonly T[]): T | undefined {
  let latest: T | undefined;
  for (const s of states) if (!latest || s.sourceTimestamp >= latest.sourceTimestamp) latest = s;
  return latest;
}

/** Highest severity in the session's score history (what the stock integration reports). */
export function currentSeverity(session: Pick<Session, 'scores'>): number {
  return session.scores.reduce((max, s) => Math.max(max, s.severity), 0);
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
