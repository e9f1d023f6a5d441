import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { FaultRun, assertExactlyOnce, pause, scaled } from './harness.js';

describe('faults: replicas', () => {
  it('three daemons on one Redis, one killed and restarted repeatedly, make each incident once', async (t) => {
    const run = await FaultRun.start({ name: 'replicas', env: { WORKER_CONCURRENCY: '4' } });
    try {
      run.xsoar.setFaults({ latencyMs: 40 });
      run.addSessions(scaled(300));
      await Promise.all([run.startDaemon(0), run.startDaemon(1), run.startDaemon(2)]);
      const restarts = scaled(10);
      for (let i = 0; i < restarts; i++) {
        await pause(700);
        if (i % 2 === 0) run.addSessions(scaled(8));
        await run.stopDaemon(2, 'SIGKILL');
        await run.startDaemon(2);
      }
      await run.waitComplete();
      const report = await run.report();
      const polls = (run.allOutput().match(/"msg":"poll completed"/g) ?? []).length;
      t.diagnostic(FaultRun.summary('replicas', report, { replicas: 3, restarts, polls }));
      assertExactlyOnce(report);
      assert.deepEqual(report.wrongFields, []);
    } finally {
      await run.close();
    }
  });
});
