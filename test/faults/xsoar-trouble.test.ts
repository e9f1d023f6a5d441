import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { FaultRun, assertExactlyOnce, pause, scaled } from './harness.js';

describe('faults: XSOAR trouble', () => {
  it('makes exactly one incident per session through 5xx, lost and slow answers and a total outage', async (t) => {
    const run = await FaultRun.start({ name: 'xsoar', env: { WORKER_CONCURRENCY: '8', XSOAR_TIMEOUT: '1s' } });
    try {
      // 10 % 5xx (half before storing, half after), 5 % lost answers after storing, 5 % slower than the client timeout.
      run.xsoar.setFaults({ errorRate: 0.05, errorAfterStoreRate: 0.05, lostResponseRate: 0.05, slowRate: 0.05, slowMs: 2_000 });
      run.addSessions(scaled(300));
      await run.startDaemon();
      await pause(1_500);
      // "Two minutes" of total outage, compressed (backoff and timeouts are compressed alike).
      const outageMs = 8_000;
      run.xsoar.outage(outageMs);
      run.addSessions(scaled(20));
      await pause(outageMs);
      await run.waitComplete();
      const report = await run.report();
      const byStatus = run.xsoar.stats().byStatus;
      t.diagnostic(FaultRun.summary('xsoar-trouble', report, { outageMs, answers: JSON.stringify(byStatus) }));
      assertExactlyOnce(report);
      assert.deepEqual(report.wrongFields, []);
      assert.ok((byStatus['503'] ?? 0) > 0 && (byStatus['0'] ?? 0) > 0 && ((byStatus['500'] ?? 0) + (byStatus['502'] ?? 0)) > 0, 'the faults happened');
    } finally {
      await run.close();
    }
  });
});
