/** The create-once protocol's decisions, case by case (the forward worker carries them out). */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { Code42RequestError } from '../../src/code42/errors.js';
import { afterFailedCreate, firstStep, markFromTheFuture, searchVerdict } from '../../src/forward/create-once.js';
import type { LedgerEntry } from '../../src/forward/ledger.js';
import { XsoarAuthError, XsoarRateLimitedError, XsoarRejectedError, XsoarResponseError, XsoarUnavailableError } from '../../src/xsoar/errors.js';

const mark = (at: number) => ({ at, name: 'Code42 - x' });
const entry = (e: Partial<LedgerEntry>): LedgerEntry => ({ incidentId: null, accepted: null, inFlight: null, forced: false, ...e });
const SETTLE = 10_000;

describe('create once: the first step', () => {
  const rows: Array<[string, LedgerEntry, number, string]> = [
    ['incident known', entry({ incidentId: '7', inFlight: mark(0) }), 0, 'done'],
    ['accepted without id, inside the settle window', entry({ accepted: mark(1_000) }), 5_000, 'await-id'],
    ['accepted without id, window over', entry({ accepted: mark(1_000) }), 11_000, 'resolve-accepted'],
    ['accepted wins over in flight', entry({ accepted: mark(1_000), inFlight: mark(0) }), 2_000, 'await-id'],
    ['unknown outcome', entry({ inFlight: mark(1_000) }), 2_000, 'search-first'],
    ['nothing known', entry({}), 0, 'create'],
  ];
  for (const [what, e, now, step] of rows) it(`${what} → ${step}`, () => assert.equal(firstStep(e, now, SETTLE).step, step));
  it('checks for lost Redis state before a create unless the operator forced it', () => {
    assert.deepEqual(firstStep(entry({}), 0, SETTLE), { step: 'create', checkStateLoss: true });
    assert.deepEqual(firstStep(entry({ forced: true }), 0, SETTLE), { step: 'create', checkStateLoss: false });
  });
});

describe('create once: what a failed create leaves', () => {
  const rows: Array<[string, unknown, 'clear-mark' | 'keep-mark']> = [
    ['XSOAR 400', new XsoarRejectedError(400, 'bad'), 'clear-mark'],
    ['XSOAR 413', new XsoarRejectedError(413, 'too large'), 'clear-mark'],
    ['XSOAR 429', new XsoarRateLimitedError(1_000), 'clear-mark'],
    ['XSOAR key refused', new XsoarAuthError('refused'), 'clear-mark'],
    ['XSOAR 503 before storing', new XsoarUnavailableError('503', false, 503), 'clear-mark'],
    ['XSOAR no answer', new XsoarUnavailableError('timeout', true), 'keep-mark'],
    ['XSOAR 502 from a gateway (may be stored)', new XsoarUnavailableError('502', true, 502), 'keep-mark'],
    ['XSOAR odd 2xx body', new XsoarResponseError('no id'), 'keep-mark'],
    ['not an XSOAR answer', new Code42RequestError('sessions.events', 'x', 500), 'keep-mark'],
    ['anything else', new Error('boom'), 'keep-mark'],
  ];
  for (const [what, err, expected] of rows) it(`${what} → ${expected}`, () => assert.equal(afterFailedCreate(err), expected));
});

describe('create once: what a search proves', () => {
  const since = mark(1_000);
  it('a hit is the incident', () => assert.deepEqual(searchVerdict({ found: '9', searchStartedAt: 1_100, since, settleMs: SETTLE, now: 1_200 }), { verdict: 'found', incidentId: '9' }));
  it('nothing, inside the window: search again, a quarter window later at most', () =>
    assert.deepEqual(searchVerdict({ found: null, searchStartedAt: 1_100, since, settleMs: SETTLE, now: 1_200 }), { verdict: 'search-again', at: 1_200 + 2_000 }));
  it('nothing, near the end of the window: again at its end', () =>
    assert.deepEqual(searchVerdict({ found: null, searchStartedAt: 10_500, since, settleMs: SETTLE, now: 10_600 }), { verdict: 'search-again', at: 11_000 }));
  it('nothing, from a search that began a full window after the create: not created', () =>
    assert.deepEqual(searchVerdict({ found: null, searchStartedAt: 11_000, since, settleMs: SETTLE, now: 11_100 }), { verdict: 'not-created' }));
  it('a mark from a replica whose clock runs ahead is moved to now; one from the past is kept', () => {
    assert.deepEqual(markFromTheFuture(mark(121_000), 1_000), mark(1_000));
    assert.equal(markFromTheFuture(mark(900), 1_000), null);
  });
});
