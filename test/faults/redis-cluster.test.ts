import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { waitFor } from '../helpers/wait.js';
import { FaultRun, assertExactlyOnce, pause, scaled } from './harness.js';

describe('faults: Redis Cluster', () => {
  it('forwards every session once on a three-master cluster when the master holding the deployment restarts mid-run', async (t) => {
    const run = await FaultRun.start({ name: 'cluster', cluster: true, env: { WORKER_CONCURRENCY: '8' } });
    try {
      const cluster = run.cluster;
      assert.ok(cluster);
      assert.match(run.env.REDIS_URL ?? '', /^redis\+cluster:\/\/127\.0\.0\.1:\d+,127\.0\.0\.1:\d+,127\.0\.0\.1:\d+$/);
      run.xsoar.setFaults({ latencyMs: 150 });
      run.addSessions(scaled(60));
      await run.startDaemon();
      // Every key of the deployment shares the prefix's hash tag, so one master holds them all: restart that one.
      const owner = await cluster.ownerOf(run.prefix);
      // Mid-run: some incidents made, most sessions still queued or in flight.
      await waitFor(() => run.xsoar.incidents().length >= 10, { timeoutMs: 20_000, intervalMs: 10, what: '10 incidents' });
      await cluster.stopNode(owner, 'SIGKILL');
      const atKill = run.xsoar.incidents().length;
      // Alerts keep arriving while the master is away; with no replica its slots have no owner meanwhile.
      run.addSessions(scaled(10));
      // Down past cluster-node-timeout (2 s): the other masters mark it failed and answer CLUSTERDOWN too.
      const other = cluster.nodes.find((n) => n !== owner);
      assert.ok(other);
      await waitFor(async () => (await cluster.stateOf(other)) === 'fail', { timeoutMs: 15_000, intervalMs: 50, what: 'cluster_state:fail' });
      await pause(500);
      await cluster.startNode(owner);
      await cluster.waitHealthy();
      await run.waitComplete(60_000);
      const report = await run.report();
      t.diagnostic(FaultRun.summary('redis-cluster', report, { restarts: 1, incidentsAtKill: atKill }));
      assert.ok(atKill < report.expected, 'the master went down mid-run');
      assertExactlyOnce(report);
      if (process.env.CLUSTER_DEBUG) console.log(run.allOutput());
      assert.deepEqual(report.wrongFields, []);
      // The ops endpoints work on a cluster: ready again, and Redis memory read from the masters.
      await waitFor(async () => (await fetch(`http://127.0.0.1:${run.port()}/readyz`)).status === 200, { timeoutMs: 15_000, intervalMs: 100, what: '/readyz 200' });
      const metrics = await (await fetch(`http://127.0.0.1:${run.port()}/metrics`)).text();
      assert.match(metrics, /redis_used_memory_bytes \d+/);
      const out = run.allOutput();
      assert.match(out, new RegExp(`Redis Cluster: every key of this deployment lives under the hash-tagged prefix \\{${run.queuePrefix}\\}`));
      assert.doesNotMatch(out, /CROSSSLOT/);
      // One line when the master went away, one when it was back: not one per reconnect attempt.
      assert.equal(out.match(/Redis is unreachable: cluster node 127\.0\.0\.1:\d+/g)?.length, 1);
      assert.equal(out.match(/Redis is reachable again/g)?.length, 1);
    } finally {
      await run.close();
    }
  });
});
