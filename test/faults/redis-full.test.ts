/**
 * Redis at maxmemory (noeviction) refuses writes: the daemon waits, says so in /readyz and /metrics,
 * and resumes by itself when memory is raised; nothing ends in the failed set because of it.
 */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { Redis } from 'ioredis';
import { waitFor } from '../helpers/wait.js';
import { FaultRun, assertExactlyOnce, pause, scaled } from './harness.js';

const FULL_MS = 5_000;

describe('faults: Redis full', () => {
  it('waits while Redis refuses writes for memory, then forwards everything once; failed set empty', async (t) => {
    const run = await FaultRun.start({
      name: 'redis-full',
      // A short retry budget: a refused write that spent attempts would reach the failed set within the episode.
      env: { WORKER_ATTEMPTS: '3', WORKER_BACKOFF: '100ms', WORKER_CONCURRENCY: '4', UPSTREAM_PROBE_INTERVAL: '200ms', UPSTREAM_PROBE_MAX: '1s' },
    });
    const admin = new Redis(run.redis.url, { maxRetriesPerRequest: 3, protocol: 2 });
    try {
      run.addSessions(scaled(40));
      await run.startDaemon();
      await waitFor(() => run.xsoar.incidents().length >= 5, { timeoutMs: 30_000, what: 'the first incidents' });
      // Below what Redis already uses: every write that may grow memory is refused (noeviction).
      await admin.config('SET', 'maxmemory-policy', 'noeviction');
      await admin.config('SET', 'maxmemory', '1');
      const fullAt = Date.now();
      run.addSessions(scaled(40));

      const view = await waitFor(
        async () => {
          const res = await fetch(`http://127.0.0.1:${run.port()}/readyz`).catch(() => undefined);
          if (!res) return undefined;
          const body = (await res.json()) as { degraded?: string[]; checks: Record<string, { degraded?: boolean; detail: string }> };
          return body.checks.redisMemory?.degraded ? { status: res.status, body } : undefined;
        },
        { timeoutMs: FULL_MS, intervalMs: 100, what: '/readyz reporting Redis full' },
      );
      assert.equal(view.status, 200, JSON.stringify(view.body));
      assert.match(view.body.checks.redisMemory?.detail ?? '', /refuses writes.*used .* of maxmemory/);
      const metrics = await (await fetch(`http://127.0.0.1:${run.port()}/metrics`)).text();
      assert.match(metrics, /^code42_forwarder_redis_writes_refused 1$/m);
      assert.match(metrics, /^code42_forwarder_redis_maxmemory_bytes 1$/m);
      assert.match(metrics, /^code42_forwarder_redis_used_memory_bytes [1-9]\d*$/m);

      await pause(Math.max(0, FULL_MS - (Date.now() - fullAt)));
      const createdWhileFull = run.xsoar.incidents().length;
      await admin.config('SET', 'maxmemory', '0');
      await run.waitComplete(60_000);
      const report = await run.report();
      t.diagnostic(FaultRun.summary('redis-full', report, { fullMs: FULL_MS, incidentsAtRaise: createdWhileFull }));
      assertExactlyOnce(report);
      assert.deepEqual(report.wrongFields, []);
      assert.match(run.allOutput(), /Redis refuses writes/);
      assert.match(run.allOutput(), /Redis accepts writes again/);
    } finally {
      admin.disconnect();
      await run.close();
    }
  });
});
