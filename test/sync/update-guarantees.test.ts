/**
 * Incident updates run on the same job runtime as creates, so they get the same guarantees: an XSOAR
 * outage pauses them without spending attempts; an update that cannot succeed (its incident was deleted)
 * ends in the failed set once, with the reason, visible in `failed list` with its queue.
 */
import assert from 'node:assert/strict';
import { afterEach, describe, it } from 'node:test';
import { Daemon } from '../../src/daemon.js';
import { failedList, type FailedEntry } from '../../src/cli/failed.js';
import { createUpdateQueue } from '../../src/sync/update-queue.js';
import { silentLogger } from '../helpers/logs.js';
import { failedJobs } from '../helpers/queue.js';
import { NEW_RULE, escalate, seedSessions } from '../helpers/session-changes.js';
import { stopDaemonAndStack } from '../helpers/in-process-daemon.js';
import { testRedis } from '../helpers/redis.js';
import { startStack, type Stack } from '../helpers/stack.js';
import { waitFor } from '../helpers/wait.js';

describe('incident updates share the forward path guarantees', () => {
  let stack: Stack | undefined;
  let daemon: Daemon | undefined;

  afterEach(async () => {
    await stopDaemonAndStack(daemon, stack);
    [daemon, stack] = [undefined, undefined];
  });

  it('an XSOAR outage of 5x the retry budget loses no change; a deleted incident ends in the failed set once', async () => {
    // Retry budget: 3 attempts, 200 ms then 400 ms apart (600 ms); the outage lasts 5x that.
    const env = { WORKER_ATTEMPTS: '3', WORKER_BACKOFF: '200ms', STATE_SYNC: 'to-xsoar', STATE_SYNC_INTERVAL: '1s', UPSTREAM_PROBE_INTERVAL: '200ms', UPSTREAM_PROBE_MAX: '500ms' };
    stack = await startStack({ name: 'upd-guarantees', env });
    const s = stack;
    const ids = seedSessions(s.code42, 11, 'upd');
    const gone = ids[10] as string;
    const changed = ids.slice(0, 10);
    const d = new Daemon({ config: s.config(), logger: silentLogger() });
    daemon = d;
    await d.start();
    await waitFor(() => s.xsoar.incidents().length >= ids.length, { timeoutMs: 20_000, what: `${ids.length} incidents` });
    const incidentOf = (id: string) => s.xsoar.incidents().filter((x) => x.dbotMirrorId === id);
    s.xsoar.deleteIncidents([incidentOf(gone)[0]?.id ?? '']);

    s.xsoar.outage(3_000);
    for (const [i, id] of ids.entries()) escalate(s.code42, id, { newEvents: 1, ruleId: NEW_RULE.id, seed: 700 + i });
    await waitFor(
      () => changed.every((id) => incidentOf(id)[0]?.CustomFields.code42alertstate === 'OPEN_NEW_DATA' && s.xsoar.lifecycle.entriesOf(incidentOf(id)[0]?.investigationId ?? '').length === 1),
      { timeoutMs: 60_000, what: 'every change applied after the outage' },
    );
    const redis = testRedis();
    const updates = createUpdateQueue(redis, s.prefix, { attempts: 3, backoffMs: 200, keepCompletedMs: 0 });
    try {
      await waitFor(async () => (await updates.getFailedCount()) >= 1, { timeoutMs: 20_000, what: 'the update of the deleted incident in the failed set' });
      // The sweep of pending changes (every STATE_SYNC_INTERVAL) must not retry it for ever: two more sweeps.
      const job = (await updates.getFailed())[0];
      const attempts = job?.attemptsMade;
      const runs = async (): Promise<number> => (await d.metrics.registry.getSingleMetric('code42_forwarder_sync_runs_total')?.get())?.values[0]?.value ?? 0;
      const before = await runs();
      await waitFor(async () => (await runs()) >= before + 2, { timeoutMs: 10_000, what: 'two more state-sync runs' });
      const after = await updates.getFailed();
      assert.equal(after.length, 1, 'exactly one failed update');
      assert.equal(after[0]?.attemptsMade, attempts, 'not retried by the sweep');
      assert.match(after[0]?.failedReason ?? '', /no longer exists in XSOAR/);
      assert.equal(after[0]?.data.sessionId, gone);
    } finally {
      await updates.close();
      redis.disconnect();
    }
    assert.deepEqual(await failedJobs(s.prefix), [], 'no create failed');
    for (const id of changed) {
      assert.equal(incidentOf(id).length, 1, `one incident for ${id}`);
      assert.equal(s.xsoar.lifecycle.entriesOf(incidentOf(id)[0]?.investigationId ?? '').length, 1, `one note for ${id}`);
    }
    let out = '';
    const code = await failedList(s.config(), true, { out: (t) => (out += t), err: () => undefined, env: {} });
    assert.equal(code, 0);
    const listed = (JSON.parse(out) as FailedEntry[]).filter((e) => e.kind === 'failed');
    assert.deepEqual(
      listed.map((e) => ({ queue: e.queue, sessionId: e.sessionId })),
      [{ queue: 'update', sessionId: gone }],
    );
    let human = '';
    await failedList(s.config(), false, { out: (t) => (human += t), err: () => undefined, env: {} }, { queue: 'update' });
    assert.match(human, new RegExp(`failed\\s+update\\s+${gone}\\s+\\d+\\s+\\S+\\s+incident \\S+ of session ${gone} no longer exists in XSOAR`));
  });
});
