import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { FaultRun, assertExactlyOnce, pause, scaled } from './harness.js';

describe('faults: Redis Cluster', () => {
  it('forwards every session once on a three-master cluster when the master holding the deployment restarts mid-run', async (t) => {
    const run = await FaultRun.start({ name: 'cluster', cluster: true, env: { WORKER_CONCURRENCY: '8' } });
    try {
      const cluster = run.cluster;
      assert.ok(cluster);
      assert.match(run.env.REDIS_URL ?? '', /^redis\+cluster:\/\/127\.0\.0\.1:\d+,127\.0\.0\.1:\d+,127\.0\.0\.1:\d+$/);
      run.xsoar.setFaults({ latencyMs: 30 });
      run.addSessions(scaled(60));
      await run.startDaemon();
      // Every key of the deployment shares the prefix's hash tag, so one master holds them all: restart that one.
      const owner = await cluster.ownerOf(run.prefix);
      await pause(1_200);
      await cluster.stopNode(owner, 'SIGKILL');
      // Alerts keep arriving while the master is away; with no replica its slots have no owner meanwhile.
      run.addSessions(scaled(10));
      await pause(2_500);
      await cluster.startNode(owner);
      await cluster.waitHealthy();
      await run.waitComplete(60_000);
      const report = await run.report();
      t.diagnostic(FaultRun.summary('redis-cluster', report, { restarts: 1 }));
      assertExactlyOnce(report);
      assert.deepEqual(report.wrongFields, []);
      const out = run.allOutput();
      assert.match(out, new RegExp(`Redis Cluster: every key of this deployment lives under the hash-tagged prefix \\{${run.queuePrefix}\\}`));
      assert.doesNotMatch(out, /CROSSSLOT/);
    } finally {
      await run.close();
    }
  });
});
