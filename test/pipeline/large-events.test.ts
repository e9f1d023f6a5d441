import assert from 'node:assert/strict';
import { afterEach, describe, it } from 'node:test';
import { Daemon } from '../../src/daemon.js';
import { IncydrClient } from '../../src/code42/incydr-client.js';
import { generateTenant, makeFileEvent } from '../sims/code42/index.js';
import { mulberry32 } from '../sims/http-kit.js';
import { silentLogger } from '../helpers/logs.js';
import { failedJobs, waitForDrain } from '../helpers/queue.js';
import { stopDaemonAndStack } from '../helpers/in-process-daemon.js';
import { CODE42_CLIENT_ID, CODE42_CLIENT_SECRET, startStack, type Stack } from '../helpers/stack.js';

const MIN = 60_000;

/** A few realistic events (about 1.7 KB each) that the simulator cycles through. */
function samples(): ReturnType<typeof makeFileEvent>[] {
  const rnd = mulberry32(5);
  return Array.from({ length: 7 }, () => makeFileEvent(rnd));
}

interface RawIncident {
  fileevents: Array<{ event: { id: string } }>;
  fileevents_total: number;
  fileevents_shown: number;
}

describe('sessions with many file events', () => {
  let stack: Stack | undefined;
  let daemon: Daemon | undefined;
  afterEach(async () => {
    await stopDaemonAndStack(daemon, stack);
    [daemon, stack] = [undefined, undefined];
  });

  it('forwards a session of 100,000 events and one of 12,000 once each, with MAX_FILE_EVENTS rows and the true total, far past CODE42_MAX_RESPONSE_SIZE', async () => {
    // The general response cap is small; the events answers (about 170 MB and 20 MB) are streamed past it.
    stack = await startStack({ name: 'many-events', env: { POLL_INTERVAL: '1h', MAX_FILE_EVENTS: '300', CODE42_MAX_RESPONSE_SIZE: '4MB' } });
    const now = Date.now();
    const tenant = generateTenant({ sessions: 3, seed: 71, beginFrom: now - 30 * MIN, beginTo: now - MIN, stateWeights: { OPEN: 1 }, severityWeights: [0, 1, 1, 1, 1] });
    stack.code42.loadTenant(tenant);
    const [huge, large, small] = tenant.sessions.map((s) => s.session.sessionId) as [string, string, string];
    stack.code42.serveManyEvents(huge, 100_000, samples());
    stack.code42.serveManyEvents(large, 12_000, samples());

    daemon = new Daemon({ config: stack.config(), logger: silentLogger() });
    await daemon.start();
    await waitForDrain(stack.prefix, () => (stack?.xsoar.incidents().length ?? 0) >= 3, 120_000);

    const incidents = stack.xsoar.incidents();
    assert.equal(incidents.length, 3, 'one incident per session');
    assert.equal(stack.xsoar.stats().creates, 3);
    assert.deepEqual(await failedJobs(stack.prefix), []);
    for (const [sessionId, total] of [
      [huge, 100_000],
      [large, 12_000],
    ] as const) {
      const inc = incidents.find((i) => i.CustomFields.code42alertid === sessionId);
      assert.ok(inc, `incident of ${sessionId}`);
      const raw = JSON.parse(inc.rawJSON) as RawIncident;
      assert.equal(raw.fileevents_total, total, 'the true total');
      assert.equal(raw.fileevents_shown, 300);
      assert.deepEqual(
        raw.fileevents.map((e) => e.event.id),
        Array.from({ length: 300 }, (_, i) => `ev-${i}`),
        'the first MAX_FILE_EVENTS events, in order',
      );
      assert.equal((inc.CustomFields.code42fileevents as unknown[]).length, 300);
      assert.match(inc.request.details ?? '', new RegExp(`File events: 300 of ${total} shown; ${total - 300} more in Code42`));
      assert.match(inc.name, new RegExp(`^Code42 - ${total} `));
    }
    const smallInc = incidents.find((i) => i.CustomFields.code42alertid === small);
    assert.ok(smallInc);
    assert.equal((JSON.parse(smallInc.rawJSON) as RawIncident).fileevents_total, stack.code42.eventsOf(small).length);
  });

  it('reads an events answer through a retried 5xx and a refreshed token, and stops reading a runaway answer at CODE42_MAX_EVENTS_SIZE', async () => {
    stack = await startStack({ name: 'events-client' });
    const now = Date.now();
    const tenant = generateTenant({ sessions: 1, seed: 72, beginFrom: now - 30 * MIN, beginTo: now - MIN, stateWeights: { OPEN: 1 } });
    stack.code42.loadTenant(tenant);
    const sessionId = (tenant.sessions[0] as { session: { sessionId: string } }).session.sessionId;
    stack.code42.serveManyEvents(sessionId, 5_000, samples());
    const observed: Array<string | number> = [];
    const client = new IncydrClient({
      apiUrl: stack.code42.url,
      clientId: CODE42_CLIENT_ID,
      clientSecret: CODE42_CLIENT_SECRET,
      timeoutMs: 10_000,
      backoffLimitMs: 50,
      maxEventsResponseBytes: 1024 * 1024,
      observer: (o) => {
        if (o.endpoint === 'sessions.events') observed.push(o.status);
      },
    });

    // Retried by got (a fresh stream), then the whole answer is read.
    stack.code42.failNext(1, { status: 503, path: /\/events$/ });
    const first = await client.getSessionEvents(sessionId, { maxEvents: 10 });
    assert.equal(first.events.length, 10);
    assert.equal(first.events[9]?.event?.id, 'ev-9');
    assert.ok(first.cut, 'about 8.5 MB: cut at the 1 MB cap');
    assert.ok(first.totalCount > 100 && first.totalCount < 5_000, `a lower bound, counted before the cap (${first.totalCount})`);
    assert.deepEqual(observed, [503, 200]);

    // A revoked token: refreshed once, the request repeated once.
    stack.code42.serveManyEvents(sessionId, 200, samples());
    stack.code42.failNext(1, { status: 401, path: /\/events$/ });
    const second = await client.getSessionEvents(sessionId, { maxEvents: 1_000, maxBytes: 50_000 });
    assert.equal(second.cut, undefined);
    assert.equal(second.totalCount, 200, 'totalCount of the answer');
    assert.ok(second.events.length > 10 && second.events.length < 200, `kept within maxBytes (${second.events.length})`);

    // A session without events (404) has none; a body that is not JSON is refused naming it.
    assert.deepEqual(await client.getSessionEvents('no-such-session'), { events: [], totalCount: 0 });
    stack.code42.failNext(1, { status: 200, body: '<html>proxy</html>', contentType: 'text/html', path: /\/events$/ });
    await assert.rejects(client.getSessionEvents(sessionId), /events of session .*: the answer is not JSON \(content-type text\/html/);
  });
});
