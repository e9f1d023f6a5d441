import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { Redis } from 'ioredis';
import { waitFor } from '../helpers/wait.js';
import { FaultRun, assertExactlyOnce, pause, scaled } from './harness.js';

describe('faults: Redis loses its data', () => {
  it('loses nothing and duplicates nothing when Redis is wiped while running, and wiped with a restart (XSOAR pessimistic)', async (t) => {
    const run = await FaultRun.start({
      name: 'wipe',
      // No create ids, no dbotMirrorId, strict queries, 3 s index lag: only search can tell what exists.
      xsoar: { createAnswer: 'noId', keepDbotMirrorId: false, strictQuery: true, indexLagMs: 3_000 },
      env: { WORKER_CONCURRENCY: '8', XSOAR_SEARCH_SETTLE: '4s', FIRST_FETCH: '1h' },
    });
    try {
      run.xsoar.setFaults({ latencyMs: 20 });
      run.addSessions(scaled(60));
      const expected1 = run.expectedSessions().length;
      await run.startDaemon();
      // Phase 1: a flush while the daemon runs, with about half of the incidents made (some not yet indexed).
      // Sessions that surface now but began 3 to 6 hours ago (before the first start's FIRST_FETCH, ended
      // hours ago): found by Code42's counts, queued, and re-read after the flush if still queued then.
      run.addSessions(scaled(20), { beginFrom: Date.now() - 6 * 3_600_000, beginTo: Date.now() - 3 * 3_600_000 });
      await waitFor(() => run.xsoar.incidents().length >= Math.floor(expected1 / 2), { timeoutMs: 60_000, what: 'half the incidents' });
      const redis = new Redis(run.redis.url, { maxRetriesPerRequest: 3 });
      try {
        await redis.flushall();
      } finally {
        redis.disconnect();
      }
      run.addSessions(scaled(10));
      await run.waitComplete(90_000);
      const afterFlush = await run.report();
      t.diagnostic(FaultRun.summary('redis-wiped-while-running', afterFlush, { createdBeforeWipe: Math.floor(expected1 / 2) }));
      assertExactlyOnce(afterFlush);
      assert.match(run.allOutput(), /Redis lost its data while running: poll schedule re-created/);
      const metrics = await (await fetch(`http://127.0.0.1:${run.port()}/metrics`)).text();
      assert.match(metrics, /redis_state_lost_total 1\b/, 'the flush (the first start found XSOAR empty: no loss)');

      // Phase 2: the daemon is killed, Redis restarts empty (no AOF), the daemon starts again.
      run.addSessions(scaled(10));
      await pause(500);
      await run.stopDaemon(0, 'SIGKILL');
      await run.redis.restartEmpty();
      run.addSessions(scaled(5));
      await run.startDaemon();
      await run.waitComplete(90_000);
      const report = await run.report();
      const recovered = (run.allOutput().match(/earlier create had reached XSOAR/g) ?? []).length;
      t.diagnostic(FaultRun.summary('redis-wiped-with-restart', report, { recoveredBySearch: recovered, creates: run.xsoar.stats().creates }));
      assertExactlyOnce(report);
      assert.deepEqual(report.wrongFields, []);
      assert.ok(recovered >= expected1, `sessions already in XSOAR were found by search, not created again (${recovered})`);
    } finally {
      await run.close();
    }
  });
});
