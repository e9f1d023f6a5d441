import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { waitFor } from '../helpers/wait.js';
import { FaultRun, assertExactlyOnce, sessionOfIncident } from './harness.js';

const RUNS = 10;

describe('faults: a replica frozen past its lock', () => {
  it(`does not create what another replica took over (${RUNS} runs: SIGSTOP mid-job, takeover, SIGCONT)`, async (t) => {
    const run = await FaultRun.start({ name: 'frozen', env: { WORKER_CONCURRENCY: '2', WORKER_LOCK_DURATION: '1s' } });
    try {
      await run.startDaemon(0);
      const lostLines = (): number => (run.allOutput().match(/lost the job to another process/g) ?? []).length;
      for (let i = 0; i < RUNS; i++) {
        const before = new Set(run.expectedSessions().map((s) => s.sessionId));
        let release: () => void = () => undefined;
        const released = new Promise<void>((resolve) => (release = resolve));
        let frozen: () => void = () => undefined;
        const isFrozen = new Promise<void>((resolve) => (frozen = resolve));
        let target = '';
        // Replica 0 is the only one running: its events call for the new session is held, and it is frozen there.
        run.code42.onEventsRequest(async (sessionId) => {
          if (sessionId !== target) return;
          target = '';
          run.signal(0, 'SIGSTOP');
          frozen();
          await released;
        });
        run.addSessions(1, { eventsPerSession: () => 2, stateWeights: { OPEN: 1 }, severityWeights: [0, 1, 1, 1, 1] });
        target = run.expectedSessions().map((s) => s.sessionId).find((id) => !before.has(id)) ?? '';
        assert.ok(target, 'a new session to forward');
        const session = target;
        await isFrozen;
        // Replica 1 takes the job over once replica 0's lock has expired, and creates the incident.
        await run.startDaemon(1);
        await waitFor(() => run.xsoar.incidents().some((inc) => sessionOfIncident(inc) === session), { timeoutMs: 20_000, what: `incident of ${session}` });
        // Replica 0 wakes up with the events answer in hand: it must stop instead of creating a second incident.
        run.signal(0, 'SIGCONT');
        release();
        await waitFor(() => lostLines() >= i + 1, { timeoutMs: 10_000, intervalMs: 50, what: 'replica 0 to stop' }).catch(() => undefined);
        await run.stopDaemon(1, 'SIGKILL');
        const copies = run.xsoar.incidents().filter((inc) => sessionOfIncident(inc) === session).length;
        assert.equal(copies, 1, `run ${i + 1}: one incident for ${session}`);
      }
      run.code42.onEventsRequest(undefined);
      await run.waitComplete(30_000);
      const report = await run.report();
      t.diagnostic(FaultRun.summary('frozen-replica', report, { runs: RUNS, stoppedBeforeCreate: lostLines() }));
      assertExactlyOnce(report);
      assert.equal(lostLines(), RUNS, 'each time, the frozen replica noticed it had lost the job and stopped');
    } finally {
      await run.close();
    }
  });
});
