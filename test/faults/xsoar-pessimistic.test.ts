import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { NOT_STORED_REASON } from '../../src/forward/forward-worker.js';
import type { XsoarSimulatorOptions } from '../sims/xsoar/index.js';
import { FaultRun, assertExactlyOnce, pause, scaled } from './harness.js';

/** The real-XSOAR readings at their worst: no id in create answers, dbotMirrorId dropped, strict queries, 3 s index lag. */
const PESSIMISTIC: Partial<XsoarSimulatorOptions> = { createAnswer: 'noId', keepDbotMirrorId: false, strictQuery: true, indexLagMs: 3_000 };

describe('faults: XSOAR at its most pessimistic', () => {
  it('makes each session exactly once with no ids, no dbotMirrorId, strict queries, index lag, 5xx, lost answers and kills mid-create, three runs in a row', async (t) => {
    for (let round = 1; round <= 3; round++) {
      const run = await FaultRun.start({
        name: `xsoar-pess-${round}`,
        xsoar: { ...PESSIMISTIC, seed: 40 + round },
        // The settle window must cover the index lag.
        env: { WORKER_CONCURRENCY: '8', XSOAR_TIMEOUT: '1s', XSOAR_SEARCH_SETTLE: '4s' },
      });
      try {
        // 10 % 5xx (half before storing, half after), 5 % lost answers after storing.
        run.xsoar.setFaults({ errorRate: 0.05, errorAfterStoreRate: 0.05, lostResponseRate: 0.05 });
        // SIGKILL the daemon right after XSOAR stored a create and before it answers: forced, not left to luck.
        const killAt = new Set([5, 18, 31]);
        let stored = 0;
        let kills = 0;
        run.xsoar.onStored(async () => {
          stored += 1;
          if (!killAt.has(stored)) return;
          kills += 1;
          await run.stopDaemon(0, 'SIGKILL');
          setTimeout(() => void run.startDaemon(0), 100);
        });
        run.addSessions(scaled(45));
        await run.startDaemon();
        await pause(2_000);
        run.addSessions(scaled(10));
        await run.waitComplete(90_000);
        const report = await run.report();
        const out = run.allOutput();
        const resolved = (out.match(/incident id found by search after XSOAR accepted/g) ?? []).length;
        const recovered = (out.match(/earlier create had reached XSOAR/g) ?? []).length;
        t.diagnostic(
          FaultRun.summary(`xsoar-pessimistic run ${round}`, report, { kills, creates: run.xsoar.stats().creates, resolvedBySearch: resolved, recoveredBySearch: recovered, answers: JSON.stringify(run.xsoar.stats().byStatus) }),
        );
        assertExactlyOnce(report);
        assert.deepEqual(report.wrongFields, []);
        assert.equal(kills, killAt.size, 'every forced kill landed between XSOAR storing and answering');
        assert.ok(recovered > 0 && resolved > 0, 'ids came from search, and unknown outcomes were recovered by search');
        assert.ok(run.xsoar.incidents().every((i) => i.dbotMirrorId === undefined), 'the server kept no dbotMirrorId');
      } finally {
        await run.close();
      }
    }
  });

  it('creates a session a pre-process rule drops at most once, lists it with the reason, and keeps forwarding the others', async (t) => {
    const run = await FaultRun.start({
      name: 'xsoar-drop',
      xsoar: { ...PESSIMISTIC, indexLagMs: 500, preProcessDropRate: 1 },
      env: { WORKER_CONCURRENCY: '8', XSOAR_SEARCH_SETTLE: '1s' },
    });
    try {
      run.addSessions(scaled(20));
      const dropped = run.expectedSessions().length;
      await run.startDaemon();
      await run.waitComplete(60_000);
      const first = await run.report();
      assert.equal(first.failed.length, dropped);
      for (const f of first.failed) assert.equal(f.reason, NOT_STORED_REASON);
      assert.equal(run.xsoar.stats().creates, dropped, 'one create per session, never a second');
      const metrics = await (await fetch(`http://127.0.0.1:${run.port()}/metrics`)).text();
      assert.match(metrics, new RegExp(`xsoar_not_stored_total ${dropped}\\b`));

      // The rule goes away; new sessions arrive and are forwarded; the dropped ones are not created again.
      run.xsoar.setMode({ preProcessDropRate: 0 });
      run.addSessions(scaled(15));
      const total = run.expectedSessions().length;
      await run.waitComplete(60_000);
      await pause(1_500);
      const report = await run.report();
      t.diagnostic(FaultRun.summary('xsoar-preprocess-drop', report, { dropped, creates: run.xsoar.stats().creates }));
      assert.equal(report.got, total - dropped);
      assert.equal(report.duplicates, 0);
      assert.equal(report.failed.length, dropped);
      assert.equal(run.xsoar.stats().creates, total, 'each session was sent once');
    } finally {
      await run.close();
    }
  });
});
