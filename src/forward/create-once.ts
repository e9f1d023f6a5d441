/**
 * The create-once protocol, as pure decisions: what a forward job does given what the ledger knows, what
 * a failed create leaves behind, and what a search after an unknown outcome proves. The forward worker
 * carries them out (Redis, XSOAR); these functions only decide, so every case is a row in a table test.
 */
import { factsOf } from '../jobs/outcome.js';
import type { CreateMark, LedgerEntry } from './ledger.js';

export type FirstStep =
  /** The incident is known: nothing to do. */
  | { step: 'done'; incidentId: string }
  /** XSOAR accepted a create without its id, within the settle window: never create again; the id is looked up apart. */
  | { step: 'await-id'; accepted: CreateMark }
  /** XSOAR accepted a create without its id and the settle window has passed: one more search decides. */
  | { step: 'resolve-accepted'; accepted: CreateMark }
  /** An earlier create's outcome is unknown: search before anything else. */
  | { step: 'search-first'; since: CreateMark }
  /** Nothing is known: create (first asking whether Redis may have lost a record, unless the operator forced it). */
  | { step: 'create'; checkStateLoss: boolean };

/** What a forward job does first, given the session's ledger entry. */
export function firstStep(entry: LedgerEntry, now: number, settleMs: number): FirstStep {
  if (entry.incidentId) return { step: 'done', incidentId: entry.incidentId };
  if (entry.accepted) return now < entry.accepted.at + settleMs ? { step: 'await-id', accepted: entry.accepted } : { step: 'resolve-accepted', accepted: entry.accepted };
  if (entry.inFlight) return { step: 'search-first', since: entry.inFlight };
  return { step: 'create', checkStateLoss: !entry.forced };
}

/**
 * After a create failed: only an answer that proves nothing was stored (a refusal, a 429, refused
 * credentials, a 5xx XSOAR answered before storing) may clear the in-flight mark; any other outcome keeps
 * it, so the next attempt searches first. A failed search must never clear it.
 */
export function afterFailedCreate(err: unknown): 'clear-mark' | 'keep-mark' {
  const facts = factsOf(err);
  if (facts.upstream !== 'xsoar') return 'keep-mark';
  switch (facts.nature) {
    case 'permanent':
    case 'throttled':
    case 'credentials':
      return 'clear-mark';
    case 'outage':
    case 'retry':
      return facts.maybeSent === false ? 'clear-mark' : 'keep-mark';
  }
}

/**
 * A mark from this host's future was written by a replica whose clock runs ahead: the create happened by
 * now at the latest, so the mark is moved to now (and stored so), else every search would wait out the
 * other host's skew. Null when the mark needs no change.
 */
export function markFromTheFuture(mark: CreateMark, now: number): CreateMark | null {
  return mark.at > now ? { ...mark, at: now } : null;
}

export type SearchVerdict =
  | { verdict: 'found'; incidentId: string }
  /** Nothing found yet, but the search began inside the settle window: search again at `at`. */
  | { verdict: 'search-again'; at: number }
  /** A search that began a full settle window after the create found nothing: it was not created. */
  | { verdict: 'not-created' };

/** What a search for the incident of a create whose outcome was unknown (or whose id was not given) proves. */
export function searchVerdict(opts: { found: string | null; searchStartedAt: number; since: CreateMark; settleMs: number; now: number }): SearchVerdict {
  const { found, searchStartedAt, since, settleMs, now } = opts;
  if (found !== null) return { verdict: 'found', incidentId: found };
  if (searchStartedAt >= since.at + settleMs) return { verdict: 'not-created' };
  // Search again a quarter of the window later (250 ms to 2 s), never past the window's end.
  const step = Math.max(250, Math.min(2_000, Math.ceil(settleMs / 4)));
  return { verdict: 'search-again', at: now + Math.max(1, Math.min(step, since.at + settleMs - now)) };
}
