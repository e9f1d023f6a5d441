import assert from 'node:assert/strict';
import { afterEach, describe, it } from 'node:test';
import { LIMITER_MAX } from '../../src/jobs/job-worker.js';
import { Daemon } from '../../src/daemon.js';
import { generateTenant, type FileEventV2, type GeneratedTenant, type WireSession } from '../sims/code42/index.js';
import { captureLogger, silentLogger } from '../helpers/logs.js';
import { failedJobs as failedJobsOf, waitForDrain, withForwardQueue } from '../helpers/queue.js';
import { startStack, type Stack } from '../helpers/stack.js';
import { waitFor } from '../helpers/wait.js';
import { expectedIncident } from '../helpers/expected-incident.js';

const MIN = 60_000;

function matches(s: WireSession, severities: number[]): boolean {
  const state = [...s.states].sort((a, b) => a.sourceTimestamp - b.sourceTimestamp).at(-1)?.state;
  return severities.includes(Math.max(...s.scores.map((x) => x.severity))) && (state === 'OPEN' || state === 'OPEN_NEW_DATA');
}

/** 300 sessions with the edge cases the acceptance list names. */
function tenant300(withNames: boolean): GeneratedTenant {
  const now = Date.now();
  const t = generateTenant({
    sessions: 300,
    seed: withNames ? 21 : 20,
    actors: 40,
    rules: 10,
    deletedRules: 1,
    withNames,
    beginFrom: now - 60 * MIN,
    beginTo: now - MIN,
    eventsPerSession: (i, rnd) => (i === 0 ? 300 : i === 1 ? 0 : Math.floor(rnd() * 4)),
  });
  const force = (i: number, severity: number): WireSession => {
    const s = (t.sessions[i] as { session: WireSession }).session;
    s.scores = [{ score: 90, severity, sourceTimestamp: s.beginTime }];
    s.states = [{ state: 'OPEN', stateV2: 'OPEN', sourceTimestamp: s.beginTime + 1000, userId: null }];
    return s;
  };
  force(0, 4); // 300 events
  force(1, 3); // no events
  const deleted = force(2, 4); // its only rule was deleted
  deleted.triggeredAlerts = [{ alertId: 'alert-deleted-rule', ruleId: t.deletedRuleIds[0] as string, lessonId: null }];
  return t;
}

async function drained(stack: Stack, expected: number): Promise<void> {
  await waitForDrain(stack.prefix, () => stack.xsoar.incidents().length >= expected);
}

async function failedJobs(stack: Stack): Promise<Array<{ id: string; reason: string }>> {
  return failedJobsOf(stack.prefix);
}

describe('forwarding sessions to XSOAR', () => {
  let stack: Stack | undefined;
  let daemon: Daemon | undefined;

  afterEach(async () => {
    await daemon?.stop();
    await stack?.close();
    daemon = undefined;
    stack = undefined;
  });

  for (const withNames of [false, true]) {
    it(`makes exactly one stock-looking incident per matching session${withNames ? ' (names on the sessions)' : ''}, within the Code42 call budget`, async (t) => {
      stack = await startStack({ name: 'fwd300', env: { ALERT_SEVERITIES: 'critical,high', POLL_INTERVAL: '1h', MAX_FILE_EVENTS: '250' } });
      const tenant = tenant300(withNames);
      stack.code42.loadTenant(tenant);
      const config = stack.config();
      const sessions = tenant.sessions.map((x) => x.session).filter((s) => matches(s, [3, 4]));
      daemon = new Daemon({ config, logger: silentLogger() });
      await daemon.start();
      await drained(stack, sessions.length);

      const incidents = stack.xsoar.incidents();
      assert.equal(incidents.length, sessions.length, 'one incident per matching session');
      const byMirror = new Map(incidents.map((i) => [i.dbotMirrorId, i]));
      assert.equal(byMirror.size, incidents.length, 'no duplicates');
      const actors = new Map(tenant.actors.map((a) => [a.actorId, a]));
      const rules = new Map(tenant.rules.map((r) => [r.id, r]));
      for (const s of sessions) {
        const inc = byMirror.get(s.sessionId);
        assert.ok(inc, `incident for ${s.sessionId}`);
        const events: FileEventV2[] = stack.code42.eventsOf(s.sessionId);
        const want = expectedIncident(s, events, actors, rules, config.code42.consoleUrl);
        const raw = JSON.parse(inc.rawJSON) as Record<string, unknown>;
        const cf = inc.CustomFields;
        assert.equal(inc.type, 'Code42 Security Alert');
        assert.equal(inc.name, want.name);
        assert.equal(inc.severity, want.severity);
        assert.equal(inc.request.occurred, want.occurred);
        assert.equal(inc.createInvestigation, true);
        assert.deepEqual(inc.labels, [{ type: 'code42sessionid', value: s.sessionId }]);
        assert.equal(raw.sessionId, s.sessionId);
        assert.equal(raw.actorId, s.actorId);
        assert.deepEqual(raw.scores, s.scores);
        assert.equal(raw.riskSeverity, want.riskSeverity);
        assert.equal(raw.state, want.state);
        assert.equal(raw.actor, want.actor);
        assert.equal(raw.rule_names, want.ruleNames);
        assert.equal(raw.beginTimeIso, want.occurred);
        assert.equal(raw.alertUrl, want.alertUrl);
        assert.equal((raw.fileevents as unknown[]).length, Math.min(250, want.eventCount));
        assert.equal(cf.code42alertid, s.sessionId);
        assert.equal(cf.code42alertname, want.summary);
        assert.equal(cf.code42alertriskseveritysummary, want.summary);
        assert.equal(cf.code42alertdescription, want.ruleNames);
        assert.equal(cf.code42alertstate, want.state);
        assert.equal(cf.code42alerttimestamp, want.occurred);
        assert.equal(cf.code42severity, want.riskSeverity);
        assert.equal(cf.code42username, want.actor);
        assert.equal(cf.code42alerturl, want.alertUrl);
        assert.equal(cf.code42fileeventsversion, '2');
        const rows = cf.code42fileevents as Array<Record<string, unknown>>;
        assert.equal(rows.length, Math.min(250, want.eventCount));
        if (events[0]) {
          const e: FileEventV2 = events[0];
          assert.equal(rows[0]?.filename, e.file.name);
          assert.equal(rows[0]?.eventtimestamp, e['@timestamp']);
          assert.equal(rows[0]?.eventtype, e.event.action);
          assert.equal(rows[0]?.sha256checksum, e.file.hash.sha256);
          for (const row of rows) for (const key of Object.keys(row)) assert.match(key, /^[a-z0-9]+$/);
        }
      }
      // The edge cases.
      const big = byMirror.get((tenant.sessions[0] as { session: WireSession }).session.sessionId);
      assert.equal(JSON.parse(big?.rawJSON ?? '{}').fileevents_omitted, 50);
      assert.match(big?.request.details ?? '', /250 of 300 shown; 50 more/);
      const deleted = byMirror.get((tenant.sessions[2] as { session: WireSession }).session.sessionId);
      assert.equal(deleted?.CustomFields.code42alertdescription, '');

      // Code42 request budget: what the data makes necessary, against what was spent.
      const stats = stack.code42.stats().byEndpoint;
      const pages = stats['sessions.list'] ?? 0;
      const needActors = new Set(sessions.filter((s) => !s.actorName).map((s) => s.actorId)).size;
      const needRules = new Set(sessions.flatMap((s) => s.triggeredAlerts.filter((a) => !a.ruleName).map((a) => a.ruleId))).size;
      const minimum = pages + sessions.length + needActors + needRules;
      const actual = (stats['sessions.list'] ?? 0) + (stats['sessions.events'] ?? 0) + (stats['actors.get'] ?? 0) + (stats['rules.get'] ?? 0);
      const perSession = actual / sessions.length;
      t.diagnostic(
        `Code42 calls${withNames ? ' (names on sessions)' : ''}: ${actual} for ${sessions.length} forwarded sessions ` +
          `(${perSession.toFixed(3)}/session; minimum the data allows ${minimum} = ${pages} pages + ${sessions.length} events + ${needActors} actors + ${needRules} rules; ` +
          `${stats.oauth ?? 0} token request(s) besides)`,
      );
      assert.ok(actual <= minimum * 1.05, `calls ${actual} within 5% of the minimum ${minimum}`);
      if (withNames) assert.ok(perSession <= 1.1, `≤ 1.1 calls per session with names (${perSession})`);
    });
  }

  it('still makes exactly one incident per session with 10% XSOAR 5xx and 5% lost responses', async () => {
    stack = await startStack({ name: 'faulty', env: { WORKER_CONCURRENCY: '8' } });
    const now = Date.now();
    const t = generateTenant({ sessions: 200, seed: 30, beginFrom: now - 30 * MIN, beginTo: now, stateWeights: { OPEN: 1 } });
    stack.code42.loadTenant(t);
    stack.xsoar.setFaults({ errorRate: 0.05, errorAfterStoreRate: 0.05, lostResponseRate: 0.05 });
    daemon = new Daemon({ config: stack.config(), logger: silentLogger() });
    await daemon.start();
    await drained(stack, 200);
    await new Promise((resolve) => setTimeout(resolve, 500));
    const incidents = stack.xsoar.incidents();
    const mirrors = incidents.map((i) => i.dbotMirrorId);
    assert.equal(new Set(mirrors).size, 200, 'every session has an incident');
    assert.equal(incidents.length, 200, 'and none has two');
    const byStatus = stack.xsoar.stats().byStatus;
    assert.ok((byStatus['500'] ?? 0) + (byStatus['502'] ?? 0) > 0 && (byStatus['0'] ?? 0) > 0, `faults were injected: ${JSON.stringify(byStatus)}`);
    assert.deepEqual(await failedJobs(stack), []);
  });

  it('searches before creating again even when the first search after an unknown outcome fails', async () => {
    stack = await startStack({ name: 'search429', env: { WORKER_CONCURRENCY: '1', WORKER_BACKOFF: '800ms' } });
    stack.code42.addSession({ sessionId: 'ambiguous-1', beginTime: Date.now() - MIN });
    // The first create is stored, but XSOAR answers 5xx: the outcome is unknown to the daemon. Its answer
    // is held until the next faults are in place, so the follow-up cannot slip in before them.
    stack.xsoar.setFaults({ errorAfterStoreRate: 1 });
    const hold = stack.xsoar.holdCreates(1);
    daemon = new Daemon({ config: stack.config(), logger: silentLogger() });
    await daemon.start();
    await hold.whenHeld(1);
    assert.equal(stack.xsoar.incidents().length, 1, 'the stored incident');
    // The follow-up search is refused with 429; the one after that must still search, not create.
    stack.xsoar.setFaults({});
    stack.xsoar.rateLimitNext(1, 1);
    hold.release();
    await waitForDrain(stack.prefix);
    assert.equal(stack.xsoar.incidentsByMirrorId('ambiguous-1').length, 1);
    assert.equal(stack.xsoar.stats().byStatus['429'], 1);
    assert.equal(stack.xsoar.stats().creates, 1);
  });

  it('works with an XSOAR 8 advanced key', async () => {
    stack = await startStack({ name: 'x8', xsoar: { apiKeyId: '17', flavour: '8' }, env: { XSOAR_AUTH_TYPE: 'advanced' } });
    const now = Date.now();
    stack.code42.loadTenant(generateTenant({ sessions: 20, seed: 31, beginFrom: now - 30 * MIN, beginTo: now, stateWeights: { OPEN: 1 } }));
    daemon = new Daemon({ config: stack.config(), logger: silentLogger() });
    await daemon.start();
    await drained(stack, 20);
    assert.equal(stack.xsoar.incidents().length, 20);
    assert.ok(stack.xsoar.requests.every((r) => r.path.startsWith('/xsoar/public/v1/')));
    assert.equal(stack.xsoar.stats().authFailures, 0);
  });

  it('gives one clear error line for a wrong XSOAR key and does not spin', async () => {
    stack = await startStack({ name: 'badkey', xsoar: { apiKeyId: '17', flavour: '8' }, env: { XSOAR_AUTH_TYPE: 'advanced', WORKER_CONCURRENCY: '4' } });
    const now = Date.now();
    stack.code42.loadTenant(generateTenant({ sessions: 30, seed: 32, beginFrom: now - 30 * MIN, beginTo: now, stateWeights: { OPEN: 1 } }));
    const { logger, lines } = captureLogger('info');
    daemon = new Daemon({ config: stack.config({ XSOAR_API_KEY: 'wrong-key' }), logger });
    await daemon.start();
    await waitFor(() => stack?.xsoar.stats().authFailures, { what: 'a refused create' });
    // Not spinning: the whole queue is paused for a minute instead of retrying. (Asked with the limiter's max:
    // the worker's own limiter key, which lives up to a second in normal work, is not a pause.)
    const pausedFor = await withForwardQueue(stack.prefix, (queue) => waitFor(() => queue.getRateLimitTtl(LIMITER_MAX), { what: 'the queue paused' }));
    assert.ok(pausedFor > 50_000, `paused for ${pausedFor} ms`);
    const attempts = stack.xsoar.stats().authFailures;
    assert.ok(attempts <= 4, `at most one round of in-flight creates, then a pause (${attempts})`);
    const errors = lines.map((l) => JSON.parse(l) as { level: string; msg: string }).filter((l) => l.level === 'error');
    assert.equal(errors.length, 1, JSON.stringify(errors));
    assert.match(errors[0]?.msg ?? '', /XSOAR refused the API key \(HTTP 401.*check XSOAR_API_KEY/);
    assert.ok(!lines.join('\n').includes('wrong-key'), 'the key never reaches the logs');
    assert.equal(stack.xsoar.incidents().length, 0);
    assert.deepEqual(await failedJobs(stack), [], 'auth failures do not burn the jobs');
    assert.match(daemon.status.authFailure('xsoar')?.message ?? '', /refused the API key/);
  });

  it('pauses instead of failing queued sessions when Code42 stops accepting the API client', async (t) => {
    stack = await startStack({ name: 'c42auth', env: { WORKER_ATTEMPTS: '2' } });
    const now = Date.now();
    stack.code42.loadTenant(generateTenant({ sessions: 10, seed: 33, beginFrom: now - 30 * MIN, beginTo: now, stateWeights: { OPEN: 1 } }));
    // First the sessions are queued while XSOAR answers 429 with Retry-After: 60: the first create pauses
    // the whole queue and every job goes back to wait with no attempt spent, however slow the machine.
    stack.xsoar.rateLimitNext(1_000, 60);
    const first = new Daemon({ config: stack.config({ INCLUDE_FILES: 'false' }), logger: silentLogger() });
    // Handed to the clean-up before it starts: a failure before its stop below must not leave it running.
    let firstStopped = false;
    t.after(() => (firstStopped ? undefined : first.stop()));
    await first.start();
    await withForwardQueue(stack.prefix, (queue) => waitFor(async () => (await queue.count()) >= 10, { what: '10 queued sessions', timeoutMs: 30_000 }));
    await first.stop();
    firstStopped = true;
    // ...then the daemon comes back with credentials Code42 refuses, and XSOAR is back (its pause lifted).
    stack.xsoar.rateLimitNext(0, 1);
    await withForwardQueue(stack.prefix, (queue) => queue.removeRateLimitKey());
    daemon = new Daemon({ config: stack.config({ CODE42_CLIENT_SECRET: 'revoked-secret' }), logger: silentLogger() });
    await daemon.start();
    await waitFor(() => daemon?.status.authFailure('code42'), { what: 'the Code42 auth failure' });
    // The first daemon's outage pause (a second or two) may still be running: wait for the auth pause.
    const pausedFor = await withForwardQueue(stack.prefix, (queue) =>
      waitFor(async () => ((await queue.getRateLimitTtl()) > 50_000 ? queue.getRateLimitTtl() : 0), { what: 'the queue paused for the refused credentials' }),
    );
    assert.ok(pausedFor > 50_000);
    assert.match(daemon.status.authFailure('code42')?.message ?? '', /Code42 refused the API client credentials \(HTTP 401/);
    assert.deepEqual(await failedJobs(stack), [], 'no attempt is burned while the credentials are refused');
    assert.equal(stack.xsoar.incidents().length, 0);
    const readiness = await daemon.readiness();
    assert.equal(readiness.ready, false);
    assert.equal(readiness.checks.code42Auth?.ok, false);
  });

  it('puts a session that cannot be mapped and one XSOAR refuses in the failed set with readable reasons', async () => {
    stack = await startStack({ name: 'bad', env: { WORKER_CONCURRENCY: '1' } });
    const now = Date.now();
    stack.code42.addSession({ sessionId: 'ok-1', beginTime: now - 3 * MIN });
    stack.code42.addSession({ sessionId: 'refused-1', beginTime: now - 2 * MIN });
    // A begin time that is an integer but no date (year 287396): passes the type check, cannot be mapped.
    stack.code42.addSession({ sessionId: 'unmappable-1', beginTime: 9_000_000_000_000_000 - 1 });
    daemon = new Daemon({ config: stack.config(), logger: silentLogger() });
    // The first create XSOAR sees is refused with a field error.
    stack.xsoar.rejectNext(1, 'Invalid value for mandatory field code42username');
    await daemon.start();
    await waitFor(async () => (await failedJobs(stack as Stack)).length === 2, { what: 'two failed jobs', timeoutMs: 20_000 });
    await drained(stack, 1);
    const failed = await failedJobs(stack);
    const reasons = failed.map((f) => f.reason).join('\n');
    assert.match(reasons, /session unmappable-1: field beginTime: not a valid time/);
    assert.match(reasons, /XSOAR rejected the request \(HTTP 400\): Invalid value for mandatory field code42username/);
    assert.ok(!reasons.includes('xsoar-sim-api-key'), 'the XSOAR key is never in a reason');
    assert.equal(stack.xsoar.incidents().length, 1);
  });
});
