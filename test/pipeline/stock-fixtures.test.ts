/**
 * Fixture-shaped sessions end to end. The fixtures in test/fixtures/incydr follow the shapes of the public
 * test data of the stock XSOAR pack (session_response*.json, actor_response.json, rule_response.json) and of
 * the Incydr SDK (TEST_SESSION: stateV2, actorName, ruleName, lessonId, contentInspectionResults with
 * eventResults). Each becomes an incident whose name, severity, occurred and `code42*` fields are the values
 * the stock integration derives from the same data (xsoar-api.md §7.4–§7.5), written out below by hand:
 *   riskSeverity = SESSION_SEVERITY_LIST[max(scores, key=severity).severity]      (mapper: MODERATE → MEDIUM)
 *   state        = max(states, key=sourceTimestamp).state
 *   actor        = actors.get_actor_by_id(actorId).name
 *   rule_names   = ", ".join(get_rule(a.ruleId).name for a in triggeredAlerts)  (404s skipped)
 *   beginTimeIso = datetime.fromtimestamp(beginTime / 1000, UTC).isoformat()
 *   name         = "Code42 - " + "<event count> " + exfiltrationSummary          (include_files)
 */
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { afterEach, describe, it } from 'node:test';
import type { Daemon } from '../../src/daemon.js';
import { makeFileEvent, type SessionInput, type WireActor, type WireRule } from '../sims/code42/index.js';
import { mulberry32 } from '../sims/http-kit.js';
import { runDaemonUntil, stopDaemonAndStack } from '../helpers/in-process-daemon.js';
import { startStack, type Stack } from '../helpers/stack.js';

const FIXTURES = new URL('../fixtures/incydr/', import.meta.url);
const CONSOLE = 'https://console.us.code42.com';

function fixture<T>(name: string): T {
  return JSON.parse(readFileSync(new URL(name, FIXTURES), 'utf8')) as T;
}

interface Expected {
  name: string;
  severity: number;
  occurred: string;
  CustomFields: Record<string, string>;
}

const EXPECTED: Record<string, Expected> = {
  'fixture-session-box-1': {
    name: 'Code42 - 2 document file(s) shared via link from corporate Box',
    severity: 2,
    occurred: '2024-09-11T19:26:00.680000+00:00',
    CustomFields: {
      code42alertid: 'fixture-session-box-1',
      code42alertname: '2 document file(s) shared via link from corporate Box',
      code42alertriskseveritysummary: '2 document file(s) shared via link from corporate Box',
      code42alertdescription: 'Public link shares from corporate cloud',
      code42alertstate: 'OPEN',
      code42alerttimestamp: '2024-09-11T19:26:00.680000+00:00',
      code42severity: 'MODERATE',
      code42username: 'fixture.actor@example.com',
      code42alerturl: `${CONSOLE}/app/#/alerts/review-alerts/fixture-session-box-1`,
      code42fileeventsversion: '2',
    },
  },
  'fixture-session-sdk-2': {
    // The highest score wins although the latest is lower; the latest state wins; the deleted rule names nothing.
    name: 'Code42 - 3 source code file(s) uploaded to personal Dropbox via browser',
    severity: 4,
    occurred: '2024-12-19T00:00:00+00:00',
    CustomFields: {
      code42alertid: 'fixture-session-sdk-2',
      code42alertname: '3 source code file(s) uploaded to personal Dropbox via browser',
      code42alertriskseveritysummary: '3 source code file(s) uploaded to personal Dropbox via browser',
      code42alertdescription: 'Source code to personal cloud',
      code42alertstate: 'OPEN_NEW_DATA',
      code42alerttimestamp: '2024-12-19T00:00:00+00:00',
      code42severity: 'CRITICAL',
      code42username: 'second.actor@example.com',
      code42alerturl: `${CONSOLE}/app/#/alerts/review-alerts/fixture-session-sdk-2`,
      code42fileeventsversion: '2',
    },
  },
  'fixture-session-usb-3': {
    // Three alerts, two of one rule: the stock integration names that rule twice.
    name: 'Code42 - 1 spreadsheet file(s) copied to removable media',
    severity: 3,
    occurred: '2024-09-12T19:26:00+00:00',
    CustomFields: {
      code42alertid: 'fixture-session-usb-3',
      code42alertname: '1 spreadsheet file(s) copied to removable media',
      code42alertriskseveritysummary: '1 spreadsheet file(s) copied to removable media',
      code42alertdescription: 'Public link shares from corporate cloud, Removable media exfiltration, Public link shares from corporate cloud',
      code42alertstate: 'OPEN',
      code42alerttimestamp: '2024-09-12T19:26:00+00:00',
      code42severity: 'HIGH',
      code42username: 'fixture.actor@example.com',
      code42alerturl: `${CONSOLE}/app/#/alerts/review-alerts/fixture-session-usb-3`,
      code42fileeventsversion: '2',
    },
  },
};

const EVENT_COUNTS: Record<string, number> = { 'fixture-session-box-1': 2, 'fixture-session-sdk-2': 3, 'fixture-session-usb-3': 1 };

describe('fixture-shaped sessions end to end', () => {
  let stack: Stack | undefined;
  let daemon: Daemon | undefined;

  afterEach(async () => {
    await stopDaemonAndStack(daemon, stack);
    [daemon, stack] = [undefined, undefined];
  });

  it('makes from each the incident the stock integration derives from the same data', async () => {
    stack = await startStack({ name: 'fixtures', env: { POLL_INTERVAL: '1h', FIRST_FETCH: '1500d', DEEP_LOOKBACK: '1500d', CODE42_CONSOLE_URL: CONSOLE } });
    const sim = stack.code42;
    for (const actor of fixture<WireActor[]>('actors.json')) sim.addActor(actor);
    for (const rule of fixture<WireRule[]>('rules.json')) sim.addRule(rule);
    sim.deleteRule('fixture-rule-deleted');
    const rnd = mulberry32(11);
    const page = fixture<{ items: Array<SessionInput & { sessionId: string; beginTime: number; endTime: number }> }>('sessions-page.json');
    for (const session of page.items) {
      const count = EVENT_COUNTS[session.sessionId] ?? 0;
      const events = Array.from({ length: count }, (_, i) =>
        makeFileEvent(rnd, { '@timestamp': new Date(session.beginTime + Math.floor(((session.endTime - session.beginTime) * i) / Math.max(1, count))).toISOString() }),
      );
      sim.addSession(session, { events });
    }

    daemon = await runDaemonUntil(stack, {}, 3);

    const incidents = stack.xsoar.incidents();
    assert.equal(incidents.length, 3);
    for (const [sessionId, want] of Object.entries(EXPECTED)) {
      const inc = incidents.find((i) => i.dbotMirrorId === sessionId);
      assert.ok(inc, `an incident for ${sessionId}`);
      assert.equal(inc.name, want.name, `${sessionId} name`);
      assert.equal(inc.severity, want.severity, `${sessionId} severity`);
      assert.equal(inc.request.occurred, want.occurred, `${sessionId} occurred`);
      assert.equal(inc.type, 'Code42 Security Alert');
      for (const [field, value] of Object.entries(want.CustomFields)) assert.equal(inc.CustomFields[field], value, `${sessionId} ${field}`);
      assert.equal((inc.CustomFields.code42fileevents as unknown[]).length, EVENT_COUNTS[sessionId]);

      // rawJSON: the session as it came, plus the keys the stock integration adds.
      const raw = JSON.parse(inc.rawJSON) as Record<string, unknown>;
      const source = page.items.find((s) => s.sessionId === sessionId) as unknown as Record<string, unknown>;
      for (const key of Object.keys(source)) {
        if (key === 'exfiltrationSummary') continue; // prefixed with the event count, as stock does
        assert.deepEqual(raw[key], source[key], `${sessionId} rawJSON.${key} kept as it came`);
      }
      assert.equal(raw.riskSeverity, want.CustomFields.code42severity);
      assert.equal(raw.state, want.CustomFields.code42alertstate);
      assert.equal(raw.actor, want.CustomFields.code42username);
      assert.equal(raw.rule_names, want.CustomFields.code42alertdescription);
      assert.equal(raw.beginTimeIso, want.occurred);
      assert.equal(raw.alertUrl, want.CustomFields.code42alerturl);
    }
  });
});
