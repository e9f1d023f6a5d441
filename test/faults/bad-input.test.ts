import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { Code42ResponseError } from '../../src/code42/errors.js';
import { SessionIntake } from '../../src/poll/session-intake.js';
import { parseUntrustedJson } from '../../src/infra/safe-json.js';
import { makeFileEvent } from '../sims/code42/index.js';
import { mulberry32 } from '../sims/http-kit.js';
import { runCli } from '../helpers/daemon-process.js';
import { silentLogger } from '../helpers/logs.js';
import { FaultRun, pause, scaled } from './harness.js';

interface Entry {
  kind: 'failed' | 'rejected';
  sessionId: string | null;
  reason: string;
}

const POLLUTING_SESSION = (now: number): string =>
  `{"sessionId":"proto-1","tenantId":"t","actorId":"a","beginTime":${now - 1000},"scores":[{"severity":3}],` +
  `"states":[{"state":"OPEN","sourceTimestamp":${now}}],"triggeredAlerts":[{"ruleId":"r"}],` +
  `"__proto__":{"polluted":"yes"},"notes":[{"constructor":{"prototype":{"polluted":"yes"}}}]}`;

describe('faults: bad input', () => {
  it('accounts for every bad input with a reason that names it, keeps forwarding the good ones, and pollutes no prototype', async (t) => {
    const run = await FaultRun.start({ name: 'bad', env: { WORKER_CONCURRENCY: '4', CODE42_MAX_RESPONSE_SIZE: '4MB' } });
    try {
      const now = Date.now();
      run.addSessions(scaled(120));
      // Items the sessions API should never send.
      run.code42.addRawSession({ tenantId: 't', actorId: 'a', beginTime: now - 5_000, scores: [{ severity: 3 }], states: [{ state: 'OPEN', sourceTimestamp: now }], triggeredAlerts: [] });
      run.code42.addRawSession({ sessionId: 'wrong-types-1', beginTime: 'yesterday', scores: 'high', states: [{ state: 'OPEN', sourceTimestamp: now }], triggeredAlerts: [] });
      run.code42.addRawSession({ sessionId: 'unknown-state-1', beginTime: now - 4_000, scores: [{ severity: 4 }], states: [{ state: 'SNOOZED', sourceTimestamp: now }], triggeredAlerts: [{ ruleId: 'r' }] });
      run.code42.addRawSession(parseAsRawJson(POLLUTING_SESSION(now)));
      // A session whose file-event list is about 10 MB: streamed past CODE42_MAX_RESPONSE_SIZE, forwarded (not an error).
      const rnd = mulberry32(3);
      const pad = 'x'.repeat(3_000);
      const big = Array.from({ length: 3_000 }, () => makeFileEvent(rnd, { file: { directory: `C:/Users/${pad}/` } }));
      run.code42.addSession({ sessionId: 'huge-events-1', beginTime: now - 3_000 }, { events: big });
      // Pages that are not what the API sends: plain text, and a proxy's HTML page (200 and then 502).
      run.code42.failNext(1, { status: 200, body: 'upstream says hello', contentType: 'text/plain', path: /^\/v1\/sessions$/ });
      run.code42.failNext(1, { status: 200, body: '<html><body><h1>Proxy authentication required</h1></body></html>', contentType: 'text/html', path: /^\/v1\/sessions$/ });
      run.code42.failNext(1, { status: 502, body: '<html><body>502 Bad Gateway</body></html>', contentType: 'text/html', path: /^\/v1\/sessions$/ });

      await run.startDaemon();
      await pause(1_000);
      await run.waitComplete();
      const report = await run.report();
      const list = await runCli(['failed', 'list', '--json'], run.env);
      assert.equal(list.code, 0, list.stderr);
      const entries = JSON.parse(list.stdout) as Entry[];
      const expectReason = (what: string, pattern: RegExp, kind: Entry['kind']): void => {
        assert.ok(
          entries.some((e) => e.kind === kind && pattern.test(e.reason)),
          `${what}: no ${kind} record matching ${pattern}\n${entries.map((e) => `${e.kind}: ${e.reason}`).join('\n')}`,
        );
      };
      expectReason('missing id', /^session: field sessionId: /, 'rejected');
      expectReason('wrong types', /^session wrong-types-1: field beginTime: /, 'rejected');
      // A state this version does not know is a valid session outside the filter: skipped and counted, not an error.
      assert.ok(!entries.some((e) => e.sessionId === 'unknown-state-1'), 'unknown state is not an error');
      assert.ok(!run.xsoar.incidents().some((i) => i.dbotMirrorId === 'unknown-state-1'), 'unknown state is outside the filter');
      expectReason('__proto__ keys', /^session proto-1: field __proto__: forbidden key/, 'rejected');
      assert.ok(!entries.some((e) => e.sessionId === 'huge-events-1'), 'a large events answer is not an error');
      expectReason('text page', /Code42 sessions\.list answered with a body that is not JSON \(content-type text\/plain/, 'rejected');
      expectReason('HTML page', /Code42 sessions\.list answered with a body that is not JSON \(content-type text\/html.*Proxy authentication required/, 'rejected');
      // The 502 page was retried by the client and did not stop the poll; nothing to account for but the retry.
      assert.equal(run.code42.stats().byStatus['502'], 1);

      // Everything expected arrived, the session of about 10 MB of events too, with its true total.
      assert.deepEqual(report.missing, []);
      assert.deepEqual(report.failed, []);
      const hugeIncident = run.xsoar.incidents().find((i) => i.CustomFields.code42alertid === 'huge-events-1');
      const hugeRaw = JSON.parse(hugeIncident?.rawJSON ?? '{}') as { fileevents_total?: number; fileevents_shown?: number };
      assert.equal(hugeRaw.fileevents_total, 3_000);
      assert.ok((hugeRaw.fileevents_shown ?? 0) > 0 && (hugeRaw.fileevents_shown ?? 0) <= 1_000);
      assert.equal(report.duplicates, 0);
      assert.deepEqual(report.wrongFields, []);
      const incidents = run.xsoar.incidents();
      assert.ok(!incidents.some((i) => i.rawJSON.includes('polluted')));

      // In-process, the same bytes pollute nothing either.
      const rejected: string[] = [];
      const intake = new SessionIntake({
        rejected: { record: async (r: { reason: string }) => (rejected.push(r.reason), true) } as never,
        severities: ['critical', 'high', 'moderate', 'low'],
        states: ['OPEN'],
        logger: silentLogger(),
      });
      const page = parseUntrustedJson(`{"items":[${POLLUTING_SESSION(now)}],"totalCount":1}`) as { items: unknown[] };
      const result = await intake.accept(page.items);
      assert.equal(result.valid.size, 0);
      assert.equal(({} as Record<string, unknown>).polluted, undefined);
      assert.equal((Object.prototype as Record<string, unknown>).polluted, undefined);
      assert.ok(rejected[0]?.includes('forbidden key'));
      assert.ok(new Code42ResponseError('x') instanceof Error);

      t.diagnostic(
        FaultRun.summary('bad-input', report, {
          injected: 7,
          // The unknown state is not an error: it is a session outside the filter (asserted above); nor is the
          // session of 10 MB of events (forwarded).
          errors: 5,
          accountedFor: entries.filter((e) => e.kind === 'failed' || e.kind === 'rejected').length,
          rejectedRecords: entries.filter((e) => e.kind === 'rejected').length,
          failedJobs: entries.filter((e) => e.kind === 'failed').length,
        }),
      );
    } finally {
      await run.close();
    }
  });
});

/** The raw text as JSON.parse would give it to a careless client (own `__proto__` property included). */
function parseAsRawJson(text: string): unknown {
  return JSON.parse(text) as unknown;
}
