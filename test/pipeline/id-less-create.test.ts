import assert from 'node:assert/strict';
import { afterEach, describe, it } from 'node:test';
import { Daemon } from '../../src/daemon.js';
import { stateKeys } from '../../src/store/keys.js';
import { Ledger } from '../../src/forward/ledger.js';
import { generateTenant } from '../sims/code42/index.js';
import { runCli } from '../helpers/daemon-process.js';
import { silentLogger } from '../helpers/logs.js';
import { failedJobs, waitForDrain } from '../helpers/queue.js';
import { testRedis } from '../helpers/redis.js';
import { stopDaemonAndStack } from '../helpers/in-process-daemon.js';
import { startStack, type Stack } from '../helpers/stack.js';
import { waitFor } from '../helpers/wait.js';

const MIN = 60_000;

describe('creates XSOAR accepts without an incident id', () => {
  let stack: Stack | undefined;
  let daemon: Daemon | undefined;
  afterEach(async () => {
    await stopDaemonAndStack(daemon, stack);
    [daemon, stack] = [undefined, undefined];
  });

  for (const createAnswer of ['null', 'noId'] as const) {
    it(`counts a 2xx answered with ${createAnswer === 'null' ? 'null' : 'no id'} as forwarded at once, then keeps the id a search finds`, async () => {
      // A lagging index, so the "forwarded, id unknown" state lasts long enough to be seen.
      stack = await startStack({ name: `noid-${createAnswer}`, xsoar: { createAnswer, keepDbotMirrorId: false, strictQuery: true, indexLagMs: 2_500 }, env: { XSOAR_SEARCH_SETTLE: '4s', POLL_INTERVAL: '1h' } });
      const now = Date.now();
      stack.code42.loadTenant(generateTenant({ sessions: 6, seed: 70, beginFrom: now - 30 * MIN, beginTo: now - MIN, stateWeights: { OPEN: 1 }, severityWeights: [0, 1, 1, 1, 1] }));
      daemon = new Daemon({ config: stack.config(), logger: silentLogger() });
      await daemon.start();
      const redis = testRedis();
      try {
        const ledger = new Ledger(redis, stateKeys(stack.prefix));
        const first = await waitFor(() => stack?.xsoar.incidents()[0], { what: 'the first incident' });
        const sessionId = first.CustomFields.code42alertid as string;
        // Forwarded before its id is known (the index has not caught up yet).
        await waitFor(async () => (await ledger.isForwarded(sessionId)) && (await ledger.incidentFor(sessionId)) === null, { intervalMs: 20, what: 'forwarded, id unknown' });
        const failed = await runCli(['failed', 'list'], stack.env);
        assert.match(failed.stdout, /session\(s\) forwarded whose XSOAR incident id is not known yet/);
        await waitForDrain(stack.prefix);
        // The jobs end at the 2xx; the ids are looked up apart, after the index caught up.
        await waitFor(async () => (await ledger.acceptedCount()) === 0, { timeoutMs: 20_000, what: 'every id found' });
        const incidents = stack.xsoar.incidents();
        assert.equal(incidents.length, 6, 'one incident per session');
        for (const inc of incidents) assert.equal(await ledger.incidentFor(inc.CustomFields.code42alertid as string), inc.id, 'the ledger has the id the search found');
        assert.equal(await ledger.acceptedCount(), 0);
        assert.deepEqual(await failedJobs(stack.prefix), []);
        assert.equal(stack.xsoar.stats().creates, 6, 'never created again after a 2xx');
        // replay sees them as forwarded.
        const replay = await runCli(['replay', '--since', '1h'], stack.env);
        assert.match(replay.stdout, /enqueued 0, .*already forwarded 6/);
      } finally {
        redis.disconnect();
      }
    });
  }
});
