/**
 * Shutdown does not wait out the 25 s deadline when the queue is paused because XSOAR refuses the key
 * (or an upstream is down): jobs paused for that are handed back at once and the process exits.
 */
import assert from 'node:assert/strict';
import { afterEach, describe, it } from 'node:test';
import { startDaemon, type DaemonProcess } from '../helpers/daemon-process.js';
import { freePort } from '../helpers/ports.js';
import { LIMITER_MAX } from '../../src/jobs/job-worker.js';
import { failedJobs, withForwardQueue } from '../helpers/queue.js';
import { startStack, type Stack } from '../helpers/stack.js';
import { waitFor } from '../helpers/wait.js';
import { generateTenant } from '../sims/code42/index.js';

describe('shutdown while the queue is paused', () => {
  let stack: Stack | undefined;
  let daemon: DaemonProcess | undefined;

  afterEach(async () => {
    await daemon?.stop('SIGKILL').catch(() => undefined);
    await stack?.close();
    daemon = undefined;
    stack = undefined;
  });

  for (const cause of ['XSOAR refuses the key', 'XSOAR is down'] as const) {
    it(`exits within a few seconds of SIGTERM when ${cause}`, async (t) => {
      stack = await startStack({ name: 'stop-paused', env: { WORKER_CONCURRENCY: '4', UPSTREAM_FAILURE_THRESHOLD: '2' } });
      const now = Date.now();
      stack.code42.loadTenant(generateTenant({ sessions: 20, seed: 71, beginFrom: now - 600_000, beginTo: now, stateWeights: { OPEN: 1 } }));
      if (cause === 'XSOAR is down') stack.xsoar.outage(600_000);
      const env = { ...stack.env, LOG_LEVEL: 'info', HTTP_PORT: String(await freePort()), ...(cause === 'XSOAR refuses the key' ? { XSOAR_API_KEY: 'not-the-key' } : {}) };
      daemon = startDaemon(env);
      const prefix = stack.prefix;
      // Paused for a minute (refused key) or until the next probe (outage).
      await withForwardQueue(prefix, (queue) => waitFor(async () => (await queue.getRateLimitTtl(LIMITER_MAX)) > 0, { timeoutMs: 20_000, what: 'the queue paused' }));
      const started = Date.now();
      const stopping = daemon;
      const result = await stopping.stop('SIGTERM');
      const tookMs = Date.now() - started;
      daemon = undefined;
      await new Promise((resolve) => setTimeout(resolve, 200));
      t.diagnostic(`shutdown while paused (${cause}): ${tookMs} ms`);
      assert.equal(result.code, 0, result.stdout + result.stderr);
      assert.ok(tookMs < 5_000, `shutdown took ${tookMs} ms\n${stopping.output().split('\n').map((l) => l.slice(0, 400)).join('\n')}`);
      assert.deepEqual(await failedJobs(prefix), []);
    });
  }
});
