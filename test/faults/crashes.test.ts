import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { mulberry32 } from '../sims/http-kit.js';
import { FaultRun, pause, scaled } from './harness.js';

describe('faults: crashes', () => {
  it('loses nothing and duplicates nothing when the daemon is SIGKILLed 20 times', async (t) => {
    const run = await FaultRun.start({ name: 'crashes', env: { WORKER_CONCURRENCY: '8' } });
    try {
      const rnd = mulberry32(7);
      // Latency after XSOAR has stored an incident widens the window between its answer and our
      // ledger write, where a kill leaves an incident the ledger does not know.
      run.xsoar.setFaults({ latencyMs: 80 });
      run.code42.setLatency(5);
      run.addSessions(scaled(250));
      await run.startDaemon();
      const kills = scaled(20);
      for (let i = 0; i < kills; i++) {
        await pause(250 + Math.floor(rnd() * 700));
        // New alerts keep arriving, so kills also land mid-poll.
        if (i % 3 === 0) run.addSessions(scaled(6));
        await run.stopDaemon(0, 'SIGKILL');
        await run.startDaemon();
      }
      await run.waitComplete();
      const report = await run.report();
      const recovered = (run.allOutput().match(/earlier create had reached XSOAR/g) ?? []).length;
      t.diagnostic(FaultRun.summary('crashes', report, { kills, recoveredBySearch: recovered, creates: run.xsoar.stats().creates }));
      assert.deepEqual(report.missing, []);
      assert.equal(report.duplicates, 0);
      assert.deepEqual(report.wrongFields, []);
      assert.deepEqual(report.failed, []);
      assert.ok(recovered > 0, 'some kills landed between XSOAR storing an incident and the ledger write');
    } finally {
      await run.close();
    }
  });
});
