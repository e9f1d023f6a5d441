import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { FaultRun, assertExactlyOnce, pause, scaled } from './harness.js';

describe('faults: Code42 trouble', () => {
  it('forwards everything through 429 storms, 5xx, short-lived tokens and late-indexed sessions', async (t) => {
    const run = await FaultRun.start({
      name: 'code42',
      // Tokens that expire every 3 s; a fixed window the daemon's own budget would exceed.
      code42: { tokenTtlSeconds: 3, rateLimit: { requests: 60, perMs: 1_000 }, seed: 11 },
      env: { WORKER_CONCURRENCY: '8', CODE42_RATE_LIMIT: '6000/min' },
    });
    try {
      run.code42.setErrorRate(0.05);
      run.addSessions(scaled(200));
      await run.startDaemon();
      const rounds = 4;
      for (let i = 0; i < rounds; i++) {
        await pause(1_500);
        // A storm: the next 30 requests all answer 429 with Retry-After: 1.
        run.code42.failNext(30, { status: 429, retryAfterSeconds: 1 });
        // Sessions that began already but become visible only a few seconds later.
        run.addSessions(scaled(15), { beginFrom: Date.now() - 10_000, beginTo: Date.now(), lateFraction: 0.5, lateByMs: 4_000 });
      }
      await pause(4_500);
      await run.waitComplete();
      const report = await run.report();
      const stats = run.code42.stats();
      t.diagnostic(
        FaultRun.summary('code42-trouble', report, {
          requests: stats.total,
          status429: stats.byStatus['429'] ?? 0,
          status5xx: stats.byStatus['500'] ?? 0,
          tokens: stats.tokensIssued,
        }),
      );
      assertExactlyOnce(report);
      assert.deepEqual(report.wrongFields, []);
      assert.ok((stats.byStatus['429'] ?? 0) > 30 && (stats.byStatus['500'] ?? 0) > 0 && stats.tokensIssued > 2, JSON.stringify(stats));
    } finally {
      await run.close();
    }
  });
});
