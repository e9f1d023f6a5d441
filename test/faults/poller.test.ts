import assert from 'node:assert/strict';
import { fileURLToPath } from 'node:url';
import { Redis } from 'ioredis';
import { describe, it } from 'node:test';
import { generateTenant } from '../sims/code42/index.js';
import { stateKeys } from '../../src/store/keys.js';
import { FaultRun, assertExactlyOnce, pause, scaled } from './harness.js';

const SKEWED_CLOCK = fileURLToPath(new URL('../helpers/skewed-clock.mjs', import.meta.url));
const HOUR = 3_600_000;
const SWEEP_ENV = { DEEP_LOOKBACK: '4d', FIRST_FETCH: '4d', SWEEP_INTERVAL: '3s', LOOKBACK: '20s' };

describe('faults: poller', () => {
  it('late and escalated sessions through SIGKILLs of two replicas: each incident once', async (t) => {
    const run = await FaultRun.start({ name: 'sweeps', env: { ...SWEEP_ENV, WORKER_CONCURRENCY: '4' } });
    try {
      run.addSessions(scaled(120));
      const now = Date.now();
      // Visible 1 h to 70 h after they began, at moments spread over the run.
      const late = generateTenant({ sessions: scaled(40), seed: 77, idPrefix: 'late', beginFrom: now - 70 * HOUR, beginTo: now - HOUR, stateWeights: { OPEN: 1 } });
      late.sessions.forEach((s, i) => (s.visibleAt = now + 500 + ((i * 7_000) % 7_000) + i * 90));
      run.code42.loadTenant(late);
      // In progress (outside OPEN, OPEN_NEW_DATA) at first; new data puts them back in the filter later.
      const parked = generateTenant({ sessions: scaled(20), seed: 78, idPrefix: 'parked', beginFrom: now - 5 * HOUR, beginTo: now - HOUR, stateWeights: { IN_PROGRESS: 1 } });
      run.code42.loadTenant(parked);
      await Promise.all([run.startDaemon(0), run.startDaemon(1)]);
      const rounds = scaled(10);
      for (let i = 0; i < rounds; i++) {
        await pause(700);
        if (i === 2 || i === 6) {
          for (const [k, s] of parked.sessions.entries()) {
            if (k % 2 === (i === 2 ? 0 : 1)) run.code42.addActivity(s.session.sessionId, { at: Date.now(), state: 'OPEN_NEW_DATA', events: 1 });
          }
        }
        const slot = i % 2;
        await run.stopDaemon(slot, 'SIGKILL');
        await run.startDaemon(slot);
      }
      await run.waitComplete();
      const report = await run.report();
      t.diagnostic(FaultRun.summary('sweeps', report, { replicas: 2, kills: rounds, late: late.sessions.length, escalated: parked.sessions.length }));
      assertExactlyOnce(report);
      assert.deepEqual(report.wrongFields, []);
    } finally {
      await run.close();
    }
  });

  it('one replica with its clock 2 minutes fast, then a correct one: nothing missing, the checkpoint never ahead of Code42', async (t) => {
    const run = await FaultRun.start({ name: 'clock-skew', env: { ...SWEEP_ENV, LOOKBACK: '10s' } });
    try {
      run.addSessions(scaled(40));
      const skewed = { NODE_OPTIONS: `--import ${SKEWED_CLOCK}`, TEST_CLOCK_SKEW_MS: '120000' };
      await run.startDaemon(0, skewed);
      // New sessions beginning now (Code42's clock) while the fast replica polls, then while the correct one does.
      const trickle = async (rounds: number): Promise<void> => {
        for (let i = 0; i < rounds; i++) {
          run.addSessions(scaled(5), { beginFrom: Date.now() - 1_000, beginTo: Date.now() });
          await pause(300);
        }
      };
      await trickle(10);
      const fastOutput = (await run.stopDaemon(0, 'SIGKILL'))?.stdout ?? '';
      await run.startDaemon(1);
      await trickle(10);
      await run.waitComplete();
      const report = await run.report();
      const redis = new Redis(run.env.REDIS_URL as string);
      const checkpoint = Number(await redis.get(stateKeys(run.prefix).checkpoint));
      redis.disconnect();
      t.diagnostic(FaultRun.summary('clock-skew', report, { skewMs: 120_000, checkpointAheadMs: checkpoint - Date.now() }));
      assert.match(fastOutput, /the local clock is 12\d s ahead of Code42's/);
      assert.ok(checkpoint <= Date.now() + 1_000, `checkpoint ${checkpoint - Date.now()} ms ahead of Code42's clock`);
      assertExactlyOnce(report);
    } finally {
      await run.close();
    }
  });
});
