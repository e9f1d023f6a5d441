import assert from 'node:assert/strict';
import { afterEach, describe, it } from 'node:test';
import { Worker } from 'bullmq';
import { IdResolver } from '../../src/forward/id-resolver.js';
import { Ledger } from '../../src/forward/ledger.js';
import { createForwardQueue } from '../../src/jobs/queues.js';
import { FORWARD_QUEUE, forwardJobId, stateKeys } from '../../src/store/keys.js';
import { SESSION_LABEL, XsoarClient } from '../../src/xsoar/xsoar-client.js';
import { captureLogger } from '../helpers/logs.js';
import { testRedis } from '../helpers/redis.js';
import { XSOAR_API_KEY, startStack, type Stack } from '../helpers/stack.js';
import { waitFor } from '../helpers/wait.js';

const TYPE = 'Code42 Security Alert';

describe('id resolver', () => {
  let stack: Stack | undefined;
  afterEach(async () => {
    await stack?.close();
    stack = undefined;
  });

  it('finds the ids of many id-less creates in one search, takes one turn per deployment, and hands what XSOAR never stored to the failed set', async () => {
    stack = await startStack({ name: 'id-resolver', xsoar: { createAnswer: 'noId', keepDbotMirrorId: false, strictQuery: true } });
    const redis = testRedis();
    const queue = createForwardQueue(redis, stack.prefix, { attempts: 3, backoffMs: 100, keepCompletedMs: 60_000 });
    try {
      const ledger = new Ledger(redis, stateKeys(stack.prefix));
      const xsoar = new XsoarClient({ url: stack.xsoar.url, apiKey: XSOAR_API_KEY, apiKeyId: null, authType: 'standard', timeoutMs: 5_000 });
      const now = Date.now();
      // 30 creates XSOAR accepted without an id.
      const ids = Array.from({ length: 30 }, (_, i) => `sess-${i}`);
      for (const sessionId of ids) {
        const name = `Code42 - 1 file for ${sessionId}`;
        const created = await xsoar.createIncident({ name, type: TYPE, labels: [{ type: SESSION_LABEL, value: sessionId }], CustomFields: { code42alertid: sessionId } } as never);
        assert.equal(created.id, null);
        await ledger.markAccepted(sessionId, { at: now, name });
      }
      // Accepted long ago, stored nowhere, its job record gone.
      await ledger.markAccepted('ghost-1', { at: now - 5_000, name: null });
      // Accepted long ago, stored nowhere, its job completed.
      await queue.add('forward', { sessionId: 'late-1' }, { jobId: forwardJobId('late-1') });
      const done = new Worker(FORWARD_QUEUE, async () => ({ incidentId: null, via: 'accepted' }), { connection: redis.duplicate(), prefix: stack.prefix });
      await waitFor(async () => (await queue.getJob(forwardJobId('late-1')))?.isCompleted(), { what: 'the job completed' });
      await done.close();
      await ledger.markAccepted('late-1', { at: now - 5_000, name: null });

      const capture = captureLogger('info');
      let notStored = 0;
      let resolvedEvents = 0;
      const make = (): IdResolver =>
        new IdResolver({
          ledger,
          xsoar,
          queue,
          incidentType: TYPE,
          settleMs: 1_000,
          logger: capture.logger,
          events: { onNotStored: () => (notStored += 1), onResolved: (n) => (resolvedEvents += n) },
        });
      assert.equal(await ledger.awaitingIdCount(), 32);
      const searchesBefore = stack.xsoar.stats().searches;
      // Two replicas at the same moment: one takes the turn.
      const [a, b] = await Promise.all([make().runOnce(), make().runOnce()]);
      assert.deepEqual([a.ran, b.ran].sort(), [false, true]);
      const run = a.ran ? a : b;
      assert.deepEqual({ looked: run.looked, resolved: run.resolved, notStored: run.notStored }, { looked: 32, resolved: 30, notStored: 2 });
      // The label query found all 30 at once; the two that are nowhere were asked by dbotMirrorId and details too.
      assert.equal(stack.xsoar.stats().searches - searchesBefore, 3);
      const stored = new Map(stack.xsoar.incidents().map((i) => [i.CustomFields.code42alertid as string, i.id]));
      for (const sessionId of ids) assert.equal(await ledger.incidentFor(sessionId), stored.get(sessionId));
      assert.equal(resolvedEvents, 30);
      // Still forwarded (never created again), no longer looked for.
      assert.equal(await ledger.awaitingIdCount(), 0);
      assert.ok(await ledger.isForwarded('ghost-1'));
      assert.ok(await ledger.isForwarded('late-1'));
      // The completed job goes back to the queue: the worker searches once more and fails it; the gone one is counted here.
      assert.equal(await (await queue.getJob(forwardJobId('late-1')))?.getState(), 'waiting');
      assert.equal(notStored, 1);
      assert.match(capture.text(), /"alertId":"ghost-1".*accepted by XSOAR but no incident stored/);
      assert.equal((capture.text().match(/incident id found by search after XSOAR accepted the create without it/g) ?? []).length, 30);

      // Nothing left: a run searches nothing.
      const again = await make().runOnce();
      assert.deepEqual(again, { ran: true, looked: 0, resolved: 0, notStored: 0 });
    } finally {
      await queue.close();
      redis.disconnect();
    }
  });
});
