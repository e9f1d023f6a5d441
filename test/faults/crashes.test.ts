import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { mulberry32 } from '../sims/http-kit.js';
import { FaultRun, assertExactlyOnce, pause, scaled } from './harness.js';

/** Session ids of the daemon's log lines whose message matches `msg`. */
function alertIdsLogged(output: string, msg: RegExp): string[] {
  return output
    .split('\n')
    .filter((line) => msg.test(line))
    .map((line) => {
      try {
        return String((JSON.parse(line) as { alertId?: unknown }).alertId ?? '');
      } catch {
        return '';
      }
    });
}

describe('faults: crashes', { timeout: 240_000 }, () => {
  it('recovers by search, without a duplicate, creates whose answer never reached a SIGKILLed daemon', async (t) => {
    // A client timeout far beyond the hold: the daemon learns nothing until it is killed.
    const run = await FaultRun.start({ name: 'crash-window', env: { WORKER_CONCURRENCY: '8', XSOAR_TIMEOUT: '60s' } });
    t.after(() => run.close());
    run.addSessions(scaled(60));
    // XSOAR stores the next 5 creates and holds their answers: the window between XSOAR storing an
    // incident and the daemon's ledger write, forced open instead of hit by chance.
    const held = 5;
    const hold = run.xsoar.holdCreates(held);
    await run.startDaemon();
    await hold.whenHeld(held, 60_000);
    const heldIds = hold.heldMirrorIds();
    await run.stopDaemon(0, 'SIGKILL');
    hold.release();
    assert.equal(run.xsoar.incidents().filter((i) => heldIds.includes(i.dbotMirrorId ?? '')).length, held, 'XSOAR stored the held creates');

    await run.startDaemon();
    await run.waitComplete();
    const report = await run.report();
    const recovered = alertIdsLogged(run.allOutput(), /earlier create had reached XSOAR/);
    const recoveredIds = new Set(recovered);
    t.diagnostic(FaultRun.summary('crash-window', report, { held, recoveredBySearch: recovered.length, creates: run.xsoar.stats().creates }));
    assertExactlyOnce(report);
    assert.deepEqual(report.wrongFields, []);
    for (const id of heldIds) {
      assert.equal(run.xsoar.incidentsByMirrorId(id).length, 1, `${id}: one incident`);
      assert.ok(recoveredIds.has(id), `${id}: the restarted daemon found the stored incident by search`);
    }
  });

  it('loses nothing and duplicates nothing when the daemon is SIGKILLed at random moments', async (t) => {
    const run = await FaultRun.start({ name: 'crashes', env: { WORKER_CONCURRENCY: '8' } });
    t.after(() => run.close());
    const rnd = mulberry32(7);
    run.xsoar.setFaults({ latencyMs: 80 });
    run.code42.setLatency(5);
    run.addSessions(scaled(150));
    await run.startDaemon();
    // Where these kills land depends on the machine's speed; the outcome must not.
    const kills = scaled(10);
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
    assertExactlyOnce(report);
    assert.deepEqual(report.wrongFields, []);
  });
});
