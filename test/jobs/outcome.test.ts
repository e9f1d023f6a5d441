/** The one outcome table every queue uses: what a failure means for a job, from what the error says. */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { DelayedError, RateLimitError, UnrecoverableError } from 'bullmq';
import { Code42AuthError, Code42RequestError, Code42ResponseError } from '../../src/code42/errors.js';
import { outcomeOf } from '../../src/jobs/outcome.js';
import { MappingError } from '../../src/xsoar/incident-mapper.js';
import { XsoarAuthError, XsoarRateLimitedError, XsoarRejectedError, XsoarResponseError, XsoarUnavailableError } from '../../src/xsoar/errors.js';
import { IncidentGoneError } from '../../src/sync/incident-updater.js';

const oom = new Error('OOM command not allowed when used memory > maxmemory.');

const table: Array<[string, unknown, string, Record<string, unknown>]> = [
  ['BullMQ delayed', new DelayedError(), 'as-thrown', {}],
  ['BullMQ rate limit', new RateLimitError(), 'as-thrown', {}],
  ['BullMQ unrecoverable', new UnrecoverableError('x'), 'as-thrown', {}],
  ['Redis full', oom, 'redis-full', {}],
  ['Redis full, wrapped', new Error('write failed', { cause: oom }), 'redis-full', {}],
  ['XSOAR 429', new XsoarRateLimitedError(2_000), 'pause', { nature: 'throttled', upstream: 'xsoar', retryAfterMs: 2_000 }],
  ['XSOAR key refused', new XsoarAuthError('refused'), 'pause', { nature: 'credentials', upstream: 'xsoar', failure: 'auth' }],
  ['Code42 credentials refused', new Code42AuthError('refused'), 'pause', { nature: 'credentials', upstream: 'code42' }],
  ['XSOAR 503', new XsoarUnavailableError('503', false, 503), 'outage', { upstream: 'xsoar', maybeSent: false }],
  ['XSOAR no answer (create may be stored)', new XsoarUnavailableError('timeout', true), 'outage', { upstream: 'xsoar', maybeSent: true }],
  ['XSOAR 408', new XsoarUnavailableError('408', false, 408), 'retry', { upstream: 'xsoar', failure: 'transient' }],
  ['Code42 502', new Code42RequestError('sessions.list', 'bad gateway', 502), 'outage', { upstream: 'code42' }],
  ['Code42 no answer', new Code42RequestError('sessions.list', 'ECONNRESET'), 'outage', { upstream: 'code42' }],
  ['Code42 408', new Code42RequestError('sessions.list', 'timeout', 408), 'outage', { upstream: 'code42' }],
  ['Code42 429 (the budget handles it, the upstream is up)', new Code42RequestError('sessions.list', 'slow down', 429), 'retry', { failure: 'unknown' }],
  ['Code42 404', new Code42RequestError('sessions.events', 'not found', 404), 'retry', { failure: 'unknown' }],
  ['Code42 bad body', new Code42ResponseError('field x'), 'fail', { failure: 'invalid_input' }],
  ['XSOAR 400', new XsoarRejectedError(400, 'bad field'), 'fail', { failure: 'xsoar_rejected' }],
  ['mapping', new MappingError('severity', 'bad severity'), 'fail', { failure: 'invalid_input' }],
  ['incident deleted in XSOAR', new IncidentGoneError('s1', '42', 'HTTP 404'), 'fail', { failure: 'gone' }],
  ['XSOAR odd 2xx', new XsoarResponseError('no data'), 'retry', { failure: 'unknown' }],
  ['anything else', new Error('boom'), 'retry', { failure: 'unknown' }],
  ['not even an Error', 'boom', 'retry', { failure: 'unknown' }],
];

describe('the job outcome table', () => {
  for (const [what, err, action, facts] of table) {
    it(`${what} → ${action}`, () => {
      const o = outcomeOf(err);
      assert.equal(o.action, action);
      if ('facts' in o) for (const [k, v] of Object.entries(facts)) assert.equal((o.facts as unknown as Record<string, unknown>)[k], v, `${what}: ${k}`);
    });
  }
});
