/**
 * What the real Incydr API may send that differs from the tidy wire types (the SDK marks the fields
 * Optional, the API says new state values will appear), taken end to end: the simulator serves each
 * shape, the daemon's poller and worker carry the session to XSOAR, and the incident must be the one
 * the stock integration would make. What stays an error ends in the rejected-input log with its reason.
 */
import assert from 'node:assert/strict';
import { after, afterEach, describe, it } from 'node:test';
import { Daemon } from '../../src/daemon.js';
import { stateKeys } from '../../src/store/keys.js';
import { PollState } from '../../src/poll/poll-state.js';
import { RejectedLog } from '../../src/poll/rejected-log.js';
import { makeFileEvent } from '../sims/code42/index.js';
import { mulberry32 } from '../sims/http-kit.js';
import { runDaemonUntil, stopDaemonAndStack } from '../helpers/in-process-daemon.js';
import { captureLogger, silentLogger } from '../helpers/logs.js';
import { waitForDrain } from '../helpers/queue.js';
import { testRedis } from '../helpers/redis.js';
import { startStack, type Stack } from '../helpers/stack.js';
import { waitFor } from '../helpers/wait.js';

const MIN = 60_000;

type Raw = Record<string, unknown>;

function metricValue(text: string, name: string, labels: string): number {
  const line = text.split('\n').find((l) => l.startsWith(`${name}{${labels}}`));
  return line ? Number(line.split(' ').at(-1)) : 0;
}

describe('tolerant Code42 input, through the poller and the worker', () => {
  let stack: Stack | undefined;
  let daemon: Daemon | undefined;
  const redis = testRedis();
  const rejected = (): Promise<Array<{ sessionId: string | null; reason: string }>> => new RejectedLog(redis, stateKeys(stack?.prefix ?? '')).list();
  after(() => redis.disconnect());

  afterEach(async () => {
    await stopDaemonAndStack(daemon, stack);
    [daemon, stack] = [undefined, undefined];
  });

  async function run(env: Record<string, string>, expected: number, logger = silentLogger()): Promise<void> {
    if (!stack) throw new Error('no stack');
    daemon = await runDaemonUntil(stack, env, expected, logger);
  }

  function incident(id: string): { name: string; severity: number; rawJSON: string; CustomFields: Record<string, unknown>; request: { occurred?: string } } {
    const inc = stack?.xsoar.incidents().find((i) => i.dbotMirrorId === id);
    assert.ok(inc, `an incident for ${id}`);
    return inc as never;
  }

  it('accepts every tolerated shape and makes the incident the stock integration would', async () => {
    stack = await startStack({ name: 'tolerant', env: { POLL_INTERVAL: '1h', CODE42_CONSOLE_URL: 'https://console.us.code42.com' } });
    const sim = stack.code42;
    // Whole seconds plus 680 ms, so that the expected times can be written out.
    const begin = Math.floor((Date.now() - 10 * MIN) / 1000) * 1000 + 680;
    const at = begin + MIN;
    const iso = new Date(begin).toISOString().replace('.680Z', '.680000+00:00');
    sim.addRule({ id: 'rule-a', name: 'Rule A' });
    sim.addActor({ actorId: 'actor-named', name: 'named@example.com' });
    sim.addActor({ actorId: 'actor-null-name', name: 'ignored' }, { shape: 'name-null' });
    sim.addActor({ actorId: 'actor-no-name', name: 'ignored' }, { shape: 'name-missing' });
    const base = {
      beginTime: begin,
      actorId: 'actor-named',
      scores: [{ score: 70, severity: 3, sourceTimestamp: at }],
      triggeredAlerts: [{ alertId: 'alert-1', ruleId: 'rule-a', lessonId: null }],
      states: [{ state: 'OPEN', stateV2: 'OPEN', sourceTimestamp: at, userId: null }],
      exfiltrationSummary: 'document file(s) shared via link from corporate Box',
    };
    const rnd = mulberry32(7);
    const event = makeFileEvent(rnd, { '@timestamp': new Date(begin + 1234).toISOString() });

    sim.addSession({ ...base, sessionId: 'v2-only', states: [{ state: 'OPEN_NEW_DATA', stateV2: 'OPEN_NEW_DATA', sourceTimestamp: at, userId: null }] }, { shapes: ['state-v2-only'] });
    sim.addSession({ ...base, sessionId: 'untimed' }, { shapes: ['untimed-state'] });
    sim.addSession({ ...base, sessionId: 'same-time' }, { shapes: ['same-time-states'] });
    sim.addSession({ ...base, sessionId: 'null-rule' }, { shapes: ['null-rule-id'] });
    sim.addSession({ ...base, sessionId: 'string-begin' }, { shapes: ['numeric-string-begin'] });
    sim.addSession({ ...base, sessionId: 'epoch-events' }, { shapes: ['epoch-ms-event-time'], events: [event] });
    sim.addSession({ ...base, sessionId: 'actor-null', actorId: 'actor-null-name' });
    sim.addSession({ ...base, sessionId: 'actor-missing', actorId: 'actor-no-name' });
    sim.addSession({ ...base, sessionId: 'actor-missing-named', actorId: 'actor-no-name', actorName: 'from-session@example.com' });
    // Only untimed states: the list order decides (the first, as Python's max does for equal keys).
    sim.addRawSession({ ...base, sessionId: 'all-untimed', states: [{ state: 'OPEN_NEW_DATA', sourceTimestamp: null }, { state: 'CLOSED', sourceTimestamp: null }] });
    await run({}, 10);

    // What the simulator served is what arrived: the shapes were really on the wire.
    const servedV2 = sim.servedSession('v2-only') as { states: Raw[] };
    assert.equal('state' in (servedV2.states[0] ?? {}), false);
    assert.equal(typeof (sim.servedSession('string-begin') as Raw).beginTime, 'string');

    const v2 = incident('v2-only');
    assert.equal(v2.CustomFields.code42alertstate, 'OPEN_NEW_DATA');
    const v2raw = JSON.parse(v2.rawJSON) as Raw;
    assert.equal(v2raw.state, 'OPEN_NEW_DATA');
    assert.deepEqual(v2raw.states, [{ stateV2: 'OPEN_NEW_DATA', sourceTimestamp: at, userId: null }]);

    const untimed = incident('untimed');
    assert.equal(untimed.CustomFields.code42alertstate, 'OPEN');
    assert.deepEqual((JSON.parse(untimed.rawJSON) as { states: Raw[] }).states.map((s) => s.state), ['IN_PROGRESS', 'OPEN']);
    assert.equal(incident('all-untimed').CustomFields.code42alertstate, 'OPEN_NEW_DATA');

    const same = incident('same-time');
    assert.equal(same.CustomFields.code42alertstate, 'OPEN');
    assert.deepEqual((JSON.parse(same.rawJSON) as { states: Raw[] }).states.map((s) => [s.state, s.sourceTimestamp]), [['OPEN', at], ['CLOSED', at]]);

    const nullRule = incident('null-rule');
    assert.equal(nullRule.CustomFields.code42alertdescription, 'Rule A');
    assert.equal((JSON.parse(nullRule.rawJSON) as { triggeredAlerts: Raw[] }).triggeredAlerts.length, 2);

    const stringBegin = incident('string-begin');
    assert.equal(stringBegin.request.occurred, iso);
    assert.equal(stringBegin.CustomFields.code42alerttimestamp, iso);

    const epoch = incident('epoch-events');
    const rows = epoch.CustomFields.code42fileevents as Raw[];
    assert.equal(rows.length, 1);
    assert.equal(rows[0]?.eventtimestamp, new Date(begin + 1234).toISOString());
    assert.equal((JSON.parse(epoch.rawJSON) as { fileevents: Raw[] }).fileevents[0]?.['@timestamp'], new Date(begin + 1234).toISOString());

    assert.equal(incident('actor-null').CustomFields.code42username, 'actor-null-name');
    assert.equal(incident('actor-missing').CustomFields.code42username, 'actor-no-name');
    assert.equal(incident('actor-missing-named').CustomFields.code42username, 'from-session@example.com');
    assert.equal(incident('v2-only').CustomFields.code42username, 'named@example.com');

    for (const id of ['v2-only', 'untimed', 'same-time', 'null-rule', 'string-begin', 'epoch-events', 'actor-null']) {
      const inc = incident(id);
      assert.equal(inc.severity, 3);
      assert.equal(inc.CustomFields.code42severity, 'HIGH');
      assert.equal(inc.request.occurred, iso);
    }
    const records = await rejected();
    assert.deepEqual(records, [], 'nothing tolerated ends in the rejected-input log');
  });

  it('pages without totalCount until a short page, and says so once', async () => {
    stack = await startStack({ name: 'nototal', code42: { totalCount: 'omitted' }, env: { POLL_INTERVAL: '200ms', WORKER_CONCURRENCY: '8' } });
    const now = Date.now();
    for (let i = 0; i < 120; i++) {
      stack.code42.addSession({ sessionId: `nt-${i}`, beginTime: now - 30 * MIN + i * 1000, endTime: now - 29 * MIN + i * 1000 });
    }
    const log = captureLogger('info');
    await run({}, 120, log.logger);
    const sim = stack.code42;
    // At least two more polls after the first, each one reading its pages.
    const firstPolls = sim.requests.filter((r) => r.endpoint === 'sessions.list' && r.query.includes('page_number=0')).length;
    await waitFor(() => sim.requests.filter((r) => r.endpoint === 'sessions.list' && r.query.includes('page_number=0')).length >= firstPolls + 2, { timeoutMs: 10_000, what: 'two more polls' });

    assert.equal(new Set(stack.xsoar.incidents().map((i) => i.dbotMirrorId)).size, 120);
    const pageNumbers = sim.requests.filter((r) => r.endpoint === 'sessions.list').map((r) => new URLSearchParams(r.query).get('page_number'));
    assert.ok(!pageNumbers.includes('3'), 'the short third page ends the poll (no fourth request)');
    assert.ok(pageNumbers.includes('2'));
    const oddityLines = log.lines.filter((l) => l.includes('sessions_page_without_total_count'));
    assert.equal(oddityLines.length, 1, oddityLines.join('\n'));
    assert.match(oddityLines[0] ?? '', /"level":"warn"/);
    const polls = metricValue(await (daemon as Daemon).metrics.text(), 'code42_forwarder_code42_oddities_total', 'kind="sessions_page_without_total_count"');
    assert.ok(polls >= 3, `every poll is counted (${polls})`);
  });

  it('skips and counts a session in a state it does not know, and forwards it once ALERT_STATES names it', async () => {
    // A server whose state filter matches any state in the history returns a session now in a new state.
    stack = await startStack({ name: 'newstate', code42: { stateFilter: 'any-in-history', extraStates: ['SNOOZED'] } });
    const now = Date.now();
    stack.code42.addSession({
      sessionId: 'snoozed-1',
      beginTime: now - 10 * MIN,
      scores: [{ score: 80, severity: 4, sourceTimestamp: now - 9 * MIN }],
      states: [
        { state: 'OPEN', stateV2: 'OPEN', sourceTimestamp: now - 9 * MIN, userId: null },
        { state: 'SNOOZED', stateV2: 'SNOOZED', sourceTimestamp: now - 5 * MIN, userId: 'analyst-1' },
      ],
    });
    stack.code42.addSession({ sessionId: 'open-1', beginTime: now - 8 * MIN });
    await run({}, 1);
    await waitFor(async () => metricValue(await (daemon as Daemon).metrics.text(), 'code42_forwarder_polls_total', 'outcome="ok"') >= 2, { timeoutMs: 5_000, what: 'two polls' });
    await daemon?.stop();
    const text = await (daemon as Daemon).metrics.text();
    // Counted on every poll that read it (the only session outside the filter), never as an error.
    const polls = metricValue(text, 'code42_forwarder_polls_total', 'outcome="ok"');
    const filtered = metricValue(text, 'code42_forwarder_sessions_total', 'outcome="filtered"');
    assert.ok(filtered >= 1 && filtered <= polls + 1, `filtered ${filtered} for ${polls} polls`);
    assert.equal(metricValue(text, 'code42_forwarder_sessions_total', 'outcome="rejected"'), 0);
    assert.deepEqual(stack.xsoar.incidents().map((i) => i.dbotMirrorId), ['open-1']);
    assert.deepEqual(await rejected(), []);

    // The operator asks for it: ALERT_STATES accepts a name this version does not know. Same deployment:
    // the next poll re-reads the look-back window and finds the session inside the filter now.
    daemon = new Daemon({ config: stack.config({ ALERT_STATES: 'OPEN,snoozed' }), logger: silentLogger() });
    await daemon.start();
    await waitForDrain(stack.prefix, () => (stack?.xsoar.incidents().length ?? 0) >= 2);
    const snoozed = incident('snoozed-1');
    assert.equal(snoozed.CustomFields.code42alertstate, 'SNOOZED');
    assert.equal(snoozed.severity, 4);
    assert.equal(stack.xsoar.incidents().length, 2);
  });

  it('keeps what stays an error in the rejected-input log with its reason', async () => {
    stack = await startStack({ name: 'stillbad', env: { POLL_INTERVAL: '1h' } });
    const now = Date.now();
    const good = { scores: [{ severity: 3 }], states: [{ state: 'OPEN', sourceTimestamp: now }], triggeredAlerts: [] };
    stack.code42.addRawSession({ ...good, beginTime: now - 5_000 });
    stack.code42.addRawSession({ ...good, sessionId: 'no-begin-1' });
    stack.code42.addRawSession({ ...good, sessionId: 'bad-begin-1', beginTime: '2024-09-11 noonish' });
    stack.code42.addRawSession(['not', 'an', 'object']);
    stack.code42.addSession({ sessionId: 'fine-1', beginTime: now - 60_000 });
    await run({}, 1);
    await waitFor(async () => (await rejected()).length >= 4, { timeoutMs: 5_000, what: 'four rejected records' });
    const reasons = (await rejected()).map((r) => r.reason).sort();
    assert.equal(reasons.length, 4, reasons.join('\n'));
    assert.ok(reasons.some((r) => /^session: field sessionId: /.test(r)));
    assert.ok(reasons.some((r) => /^session no-begin-1: field beginTime: /.test(r)));
    assert.ok(reasons.some((r) => /^session bad-begin-1: field beginTime: /.test(r)));
    assert.ok(reasons.some((r) => /^session: field \(root\): /.test(r)));
    assert.deepEqual(stack.xsoar.incidents().map((i) => i.dbotMirrorId), ['fine-1']);
  });

  it('enqueues every usable session of a 5-page poll without totalCount, rejects the one bad item of page 3, and advances the checkpoint', async () => {
    stack = await startStack({ name: 'fivepages', code42: { totalCount: 'omitted' }, env: { POLL_INTERVAL: '1h', WORKER_CONCURRENCY: '8' } });
    const now = Date.now();
    // 229 good sessions (a few in tolerated shapes) and one without an id, ordered by end time so that it is item 120 of 230: page 3.
    for (let i = 0; i < 230; i++) {
      const beginTime = now - 60 * MIN + i * 10_000;
      if (i === 120) {
        stack.code42.addRawSession({ beginTime, endTime: beginTime + 1000, scores: [{ severity: 3 }], states: [{ state: 'OPEN', sourceTimestamp: now }], triggeredAlerts: [] });
        continue;
      }
      const shapes = i % 10 === 0 ? (['state-v2-only', 'numeric-string-begin'] as const) : [];
      stack.code42.addSession({ sessionId: `fp-${i}`, beginTime, endTime: beginTime + 1000 }, { shapes: [...shapes] });
    }
    const state = new PollState(redis, stateKeys(stack.prefix));
    assert.equal(await state.getCheckpoint(), null);
    const before = Date.now();
    await run({}, 229);

    const lists = stack.code42.requests.filter((r) => r.endpoint === 'sessions.list').map((r) => new URLSearchParams(r.query).get('page_number'));
    assert.deepEqual(lists, ['0', '1', '2', '3', '4'], 'five pages, the last one short');
    const ids = new Set(stack.xsoar.incidents().map((i) => i.dbotMirrorId));
    assert.equal(ids.size, 229);
    for (let i = 0; i < 230; i++) if (i !== 120) assert.ok(ids.has(`fp-${i}`), `fp-${i} forwarded`);
    const records = await rejected();
    assert.equal(records.length, 1);
    assert.match(records[0]?.reason ?? '', /^session: field sessionId: /);
    const checkpoint = await state.getCheckpoint();
    // The checkpoint is Code42's clock, read from its Date header: whole seconds, so up to 1 s behind ours.
    assert.ok(checkpoint !== null && checkpoint >= before - 1_000, `checkpoint advanced (${checkpoint}, poll began ${before})`);
  });
});
