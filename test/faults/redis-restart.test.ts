import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { FaultRun, assertExactlyOnce, pause, scaled } from './harness.js';

describe('faults: Redis restarts', () => {
  it('loses nothing and duplicates nothing when redis-server is stopped and restarted twice', async (t) => {
    const run = await FaultRun.start({ name: 'redis', env: { WORKER_CONCURRENCY: '8' } });
    try {
      run.xsoar.setFaults({ latencyMs: 30 });
      run.addSessions(scaled(300));
      await run.startDaemon();
      for (let i = 0; i < 2; i++) {
        await pause(1_200);
        await run.redis.stop();
        // Alerts keep arriving while Redis is away.
        run.addSessions(scaled(10));
        await pause(1_500);
        await run.redis.start();
      }
      await run.waitComplete();
      const report = await run.report();
      t.diagnostic(FaultRun.summary('redis-restart', report, { restarts: 2 }));
      assertExactlyOnce(report);
      assert.deepEqual(report.wrongFields, []);
      const out = run.allOutput();
      assert.match(out, /Redis is unreachable/);
      assert.match(out, /Redis is reachable again/);
    } finally {
      await run.close();
    }
  });
});
