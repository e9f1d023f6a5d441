/**
 * Logs an on-call engineer can read: one line per failure with its reason and what happens next,
 * "will retry" only when it will, identical failures collapsed with a count, stacks only at debug.
 * Also: a session that alone keeps failing with 5xx (the upstream answers everything else) still
 * reaches the failed set; the circuit breaker does not hold it forever.
 */
import assert from 'node:assert/strict';
import { Writable } from 'node:stream';
import { afterEach, describe, it } from 'node:test';
import { Daemon } from '../../src/daemon.js';
import { createLogger } from '../../src/infra/logger.js';
import { FailureLog } from '../../src/jobs/failure-log.js';
import { captureLogger } from '../helpers/logs.js';
import { failedJobs } from '../helpers/queue.js';
import { stopDaemonAndStack } from '../helpers/in-process-daemon.js';
import { startStack, type Stack } from '../helpers/stack.js';
import { waitFor } from '../helpers/wait.js';
import { generateTenant } from '../sims/code42/index.js';

interface Line {
  level: string;
  msg: string;
  alertId?: string;
  attempt?: number;
  attempts?: number;
  err?: { stack?: string };
}

describe('failure logging', () => {
  let stack: Stack | undefined;
  let daemon: Daemon | undefined;

  afterEach(async () => {
    await stopDaemonAndStack(daemon, stack);
    [daemon, stack] = [undefined, undefined];
  });

  it('says "will retry" only when an attempt is left, then one line per session moved to the failed set', async () => {
    stack = await startStack({
      name: 'faillog',
      env: { WORKER_ATTEMPTS: '3', WORKER_BACKOFF: '50ms', UPSTREAM_FAILURE_THRESHOLD: '2', UPSTREAM_PROBE_INTERVAL: '100ms', INCLUDE_FILES: 'false' },
    });
    const now = Date.now();
    stack.code42.loadTenant(generateTenant({ sessions: 4, seed: 51, beginFrom: now - 600_000, beginTo: now, stateWeights: { OPEN: 1 } }));
    // Every create answers 500 before storing; searches (the probe) answer: XSOAR is up, the creates fail.
    stack.xsoar.setFaults({ errorRate: 1 });
    const { logger, lines } = captureLogger('info');
    daemon = new Daemon({ config: stack.config(), logger });
    await daemon.start();
    const prefix = stack.prefix;
    await waitFor(async () => (await failedJobs(prefix)).length === 4, { timeoutMs: 30_000, what: '4 sessions in the failed set' });

    const parsed = lines.map((l) => JSON.parse(l) as Line);
    const retries = parsed.filter((l) => /will retry/.test(l.msg) && l.attempt !== undefined);
    assert.ok(retries.length > 0, 'the first failure of a kind is logged with what happens next');
    for (const l of retries) assert.ok((l.attempt ?? 0) < (l.attempts ?? 0), `"will retry" on attempt ${l.attempt} of ${l.attempts}`);
    const moved = parsed.filter((l) => l.msg === 'session moved to the failed set');
    assert.equal(moved.length, 4, 'one line per session moved to the failed set');
    assert.equal(new Set(moved.map((l) => l.alertId)).size, 4);
    assert.ok(!lines.some((l) => l.includes('"stack"')), 'no stack traces at info');
    assert.ok(parsed.every((l) => l.level !== 'warn' || l.alertId !== undefined || /more forward attempts failed/.test(l.msg) || !/attempt/.test(l.msg)));
  });

  it('collapses identical failures into one line with a count', () => {
    const out: string[] = [];
    const stream = new Writable({ write: (c: Buffer, _e, done) => { out.push(c.toString()); done(); } });
    let now = 0;
    const log = new FailureLog({ logger: createLogger({ level: 'info' }, stream), windowMs: 1_000, clock: () => now });
    const summary = (n: number, s: number): string => `${n} more in ${s} s`;
    for (let i = 0; i < 50; i++) log.log('warn', 'refused', `s-${i}`, { reason: 'ECONNREFUSED' }, 'attempt failed; will retry', summary);
    log.log('warn', 'other', 's-x', { reason: 'HTTP 502' }, 'another failure; will retry', summary);
    now = 1_500;
    log.flush();
    const parsed = out.map((l) => JSON.parse(l) as { msg: string; repeated?: number; alertIds?: string[]; alertId?: string });
    assert.equal(parsed.length, 3, out.join(''));
    assert.equal(parsed[0]?.alertId, 's-0');
    const counted = parsed.find((l) => l.repeated !== undefined);
    assert.equal(counted?.repeated, 49);
    assert.equal(counted?.msg, '49 more in 2 s');
    assert.equal(counted?.alertIds?.length, 10);
  });

  it('writes stacks only at debug', () => {
    const capture = (level: string): string => {
      const out: string[] = [];
      const stream = new Writable({ write: (c: Buffer, _e, done) => { out.push(c.toString()); done(); } });
      createLogger({ level }, stream).warn({ err: new Error('boom', { cause: new Error('root') }) }, 'failed');
      return out.join('');
    };
    assert.ok(!capture('info').includes('"stack"'));
    assert.match(capture('info'), /"message":"boom".*"message":"root"/);
    assert.ok(capture('debug').includes('"stack"'));
  });
});
