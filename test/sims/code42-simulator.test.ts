import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { Code42Simulator, SESSION_SHAPES, generateTenant, makeFileEvent, type WireSession } from './code42/index.js';
import { mulberry32 } from './http-kit.js';

const T0 = Date.UTC(2024, 8, 11, 12, 0, 0);
const BASIC = `Basic ${Buffer.from('key-sim-client:sim-client-secret').toString('base64')}`;

interface Page {
  items: WireSession[];
  totalCount: number;
}

async function token(base: string): Promise<string> {
  const res = await fetch(`${base}/v1/oauth?grant_type=client_credentials`, { method: 'POST', headers: { authorization: BASIC } });
  assert.equal(res.status, 200);
  const body = (await res.json()) as { access_token: string };
  return body.access_token;
}

async function get(base: string, path: string, bearer: string): Promise<Response> {
  return fetch(`${base}${path}`, { headers: { authorization: `Bearer ${bearer}` } });
}

async function list(base: string, query: string, bearer: string): Promise<Page> {
  const res = await get(base, `/v1/sessions?${query}`, bearer);
  assert.equal(res.status, 200, await res.clone().text());
  return (await res.json()) as Page;
}

function session(id: string, fields: Partial<WireSession> = {}): Partial<WireSession> {
  return { sessionId: id, actorId: 'actor-1', beginTime: T0 - 60_000, endTime: T0 - 30_000, ...fields };
}

describe('Code42 simulator', () => {
  let now = T0;
  const sim = new Code42Simulator({ clock: () => now });
  let base = '';

  before(async () => {
    base = await sim.start();
  });
  after(async () => {
    await sim.close();
  });

  it('issues a distinct JWT-looking bearer token carrying the tenant for good credentials', async () => {
    const first = await token(base);
    const second = await token(base);
    assert.notEqual(first, second);
    const parts = first.split('.');
    assert.equal(parts.length, 3);
    const payload = JSON.parse(Buffer.from(parts[1] ?? '', 'base64url').toString('utf8')) as Record<string, unknown>;
    assert.equal(payload['tenantUid'], 'sim-tenant-0001');

    const form = await fetch(`${base}/v1/oauth`, {
      method: 'POST',
      headers: { 'content-type': 'application/x-www-form-urlencoded' },
      body: 'grant_type=client_credentials&client_id=key-sim-client&client_secret=sim-client-secret',
    });
    assert.equal(form.status, 200);
    const body = (await form.json()) as Record<string, unknown>;
    assert.equal(body['token_type'], 'bearer');
    assert.equal(body['expires_in'], 900);
  });

  it('refuses bad credentials with 401 and an unknown grant type with 400', async () => {
    const bad = await fetch(`${base}/v1/oauth`, {
      method: 'POST',
      headers: { authorization: `Basic ${Buffer.from('key-sim-client:wrong').toString('base64')}` },
    });
    assert.equal(bad.status, 401);
    assert.deepEqual(await bad.json(), { msg: 'Unauthorized' });
    const grant = await fetch(`${base}/v1/oauth?grant_type=password`, { method: 'POST', headers: { authorization: BASIC } });
    assert.equal(grant.status, 400);
    const none = await fetch(`${base}/v1/sessions`);
    assert.equal(none.status, 401);
  });

  it('expires tokens by the injected clock and on expireAllTokens', async () => {
    const t = await token(base);
    assert.equal((await get(base, '/v1/sessions', t)).status, 200);
    now += 901_000;
    assert.equal((await get(base, '/v1/sessions', t)).status, 401);
    const fresh = await token(base);
    assert.equal((await get(base, '/v1/sessions', fresh)).status, 200);
    sim.expireAllTokens();
    assert.equal((await get(base, '/v1/sessions', fresh)).status, 401);
    now = T0;
  });

  it('filters sessions by max severity, latest state and begin time', async () => {
    sim.addSession(
      session('f-high', {
        scores: [
          { score: 8, severity: 3, sourceTimestamp: T0 - 20_000 },
          { score: 2, severity: 1, sourceTimestamp: T0 - 10_000 },
        ],
        states: [
          { state: 'OPEN', stateV2: 'OPEN', sourceTimestamp: T0 - 20_000, userId: null },
          { state: 'CLOSED_TP', stateV2: 'CLOSED_TP', sourceTimestamp: T0 - 10_000, userId: 'u1' },
        ],
      }),
    );
    sim.addSession(session('f-low', { beginTime: T0 - 600_000, endTime: T0 - 500_000 }));
    sim.addSession(session('f-noalerts', { triggeredAlerts: [] }));
    const t = await token(base);

    const high = await list(base, 'severity=3', t);
    assert.deepEqual(high.items.map((s) => s.sessionId), ['f-high']);
    assert.equal((await list(base, 'severity=1', t)).totalCount, 0);

    const open = await list(base, 'state=OPEN', t);
    assert.deepEqual(open.items.map((s) => s.sessionId), ['f-low']);
    const closed = await list(base, 'state=CLOSED_TP&state=IN_PROGRESS', t);
    assert.deepEqual(closed.items.map((s) => s.sessionId), ['f-high']);

    const recent = await list(base, `on_or_after=${T0 - 60_000}`, t);
    assert.deepEqual(recent.items.map((s) => s.sessionId), ['f-high']);
    const withoutAlerts = await list(base, 'has_alerts=false', t);
    assert.equal(withoutAlerts.totalCount, 3);

    for (const q of ['on_or_after=yesterday', 'state=DISMISSED', 'severity=5', 'page_number=-1', 'sort_direction=up']) {
      const res = await get(base, `/v1/sessions?${q}`, t);
      assert.equal(res.status, 400, q);
      assert.equal(typeof ((await res.json()) as { msg: unknown }).msg, 'string');
    }
  });

  it('pages with page_size capped at 50 and a totalCount of every match', async () => {
    const paging = new Code42Simulator({ clock: () => T0 });
    const url = await paging.start();
    try {
      const tenant = generateTenant({ sessions: 120, seed: 3, beginFrom: T0 - 3_600_000, beginTo: T0 });
      paging.loadTenant(tenant);
      const t = await token(url);
      const seen: string[] = [];
      let lastEnd = Number.POSITIVE_INFINITY;
      for (let page = 0; ; page++) {
        const body = await list(url, `page_size=100&page_number=${page}`, t);
        assert.equal(body.totalCount, 120);
        assert.ok(body.items.length <= 50);
        for (const s of body.items) {
          assert.ok(s.endTime <= lastEnd, 'end_time DESC by default');
          lastEnd = s.endTime;
          seen.push(s.sessionId);
        }
        if (body.items.length < 50) break;
      }
      assert.equal(seen.length, 120);
      assert.equal(new Set(seen).size, 120);
      const first = await list(url, 'page_size=5', t);
      assert.equal(first.items.length, 5);
      const deflt = await list(url, '', t);
      assert.equal(deflt.items.length, 10);
    } finally {
      await paging.close();
    }
  });

  it('hides a late-indexed session from list and GET until its visibleAt', async () => {
    sim.addSession(session('late-1'), { visibleAt: T0 + 60_000 });
    const t = await token(base);
    assert.ok(!(await list(base, 'page_size=50', t)).items.some((s) => s.sessionId === 'late-1'));
    assert.equal((await get(base, '/v1/sessions/late-1', t)).status, 404);
    now = T0 + 60_000;
    assert.ok((await list(base, 'page_size=50', t)).items.some((s) => s.sessionId === 'late-1'));
    assert.equal((await get(base, '/v1/sessions/late-1', t)).status, 200);
    now = T0;
  });

  it('serves session events and answers 404 when a session has none', async () => {
    const rnd = mulberry32(9);
    const events = [makeFileEvent(rnd), makeFileEvent(rnd)];
    sim.addSession(session('ev-1'), { events });
    sim.addSession(session('ev-none'));
    const t = await token(base);
    const res = await get(base, '/v1/sessions/ev-1/events', t);
    assert.equal(res.status, 200);
    const body = (await res.json()) as { queryResult: { fileEvents: unknown[]; totalCount: number; nextPgToken: string } };
    assert.equal(body.queryResult.totalCount, 2);
    assert.equal(body.queryResult.fileEvents.length, 2);
    assert.equal(body.queryResult.nextPgToken, '');
    assert.equal((await get(base, '/v1/sessions/ev-none/events', t)).status, 404);
    assert.equal((await get(base, '/v1/sessions/nope/events', t)).status, 404);
    assert.equal((await get(base, '/v1/sessions/nope', t)).status, 404);
  });

  it('serves actors and rules and answers 404 for unknown actors and deleted rules', async () => {
    sim.addActor({ actorId: 'a-1', name: 'jane.doe@example.com', department: 'product' });
    sim.addRule({ id: 'r-1', name: 'Suspicious File Mismatch Rule' });
    const t = await token(base);
    const actor = (await (await get(base, '/v1/actors/actor/id/a-1', t)).json()) as Record<string, unknown>;
    assert.equal(actor['name'], 'jane.doe@example.com');
    assert.equal(actor['department'], 'product');
    assert.equal((await get(base, '/v1/actors/actor/id/a-404', t)).status, 404);
    const rule = await get(base, '/v2/alert-rules/r-1', t);
    assert.equal(rule.status, 200);
    assert.equal(((await rule.json()) as Record<string, unknown>)['isSystemRule'], false);
    sim.deleteRule('r-1');
    assert.equal((await get(base, '/v2/alert-rules/r-1', t)).status, 404);
    assert.equal((await get(base, '/v1/no-such-thing', t)).status, 404);
  });

  it('returns raw sessions verbatim, including ones without a sessionId or with a __proto__ key', async () => {
    const raw = JSON.parse('{"__proto__":{"polluted":true},"beginTime":"not-a-number","scores":"x"}') as unknown;
    sim.addRawSession(raw);
    sim.addRawSession({ sessionId: 42, beginTime: T0 - 1 });
    const t = await token(base);
    const res = await get(base, '/v1/sessions?page_size=50&severity=4&state=OPEN', t);
    assert.equal(res.status, 200);
    const text = await res.text();
    assert.ok(text.includes('"__proto__":{"polluted":true}'));
    assert.ok(text.includes('"sessionId":42'));
    assert.equal(sim.sessionIds().includes('42'), false);
  });

  it('sends queued one-shot faults first, with Retry-After, HTML bodies and path matching', async () => {
    const t = await token(base);
    sim.failNext(1, { status: 429, retryAfterSeconds: 2 });
    sim.failNext(1, { status: 502, body: '<html><body>Bad Gateway</body></html>', path: /^\/v1\/sessions$/ });
    const limited = await get(base, '/v1/actors/actor/id/a-1', t);
    assert.equal(limited.status, 429);
    assert.equal(limited.headers.get('retry-after'), '2');
    assert.deepEqual(await limited.json(), { msg: 'Too Many Requests' });
    assert.equal((await get(base, '/v1/actors/actor/id/a-1', t)).status, 200, 'path-bound fault does not match actors');
    const proxy = await get(base, '/v1/sessions', t);
    assert.equal(proxy.status, 502);
    assert.match(proxy.headers.get('content-type') ?? '', /text\/html/);
    assert.equal((await get(base, '/v1/sessions', t)).status, 200);
  });

  it('rate-limits every request in a fixed window and injects errors only outside oauth', async () => {
    const limited = new Code42Simulator({ rateLimit: { requests: 3, perMs: 5_000 } });
    const url = await limited.start();
    try {
      const t = await token(url);
      assert.equal((await get(url, '/v1/sessions', t)).status, 200);
      assert.equal((await get(url, '/v1/sessions', t)).status, 200);
      const over = await get(url, '/v1/sessions', t);
      assert.equal(over.status, 429);
      const retryAfter = Number(over.headers.get('retry-after'));
      assert.ok(Number.isInteger(retryAfter) && retryAfter >= 1 && retryAfter <= 5);
      assert.equal(limited.stats().rateLimited, 1);

      limited.setRateLimit(null);
      limited.setErrorRate(1);
      const t2 = await token(url);
      const failed = await get(url, '/v1/sessions', t2);
      assert.equal(failed.status, 500);
      assert.deepEqual(await failed.json(), { msg: 'Internal Server Error' });
    } finally {
      await limited.close();
    }
  });

  it('counts every request by endpoint and final status, and resets', async () => {
    sim.resetStats();
    const t = await token(base);
    await get(base, '/v1/sessions', t);
    await get(base, '/v1/sessions/nope', t);
    await get(base, '/v1/sessions', 'not-a-token');
    const s = sim.stats();
    assert.equal(s.total, 4);
    assert.equal(s.tokensIssued, 1);
    assert.equal(s.byEndpoint['oauth'], 1);
    assert.equal(s.byEndpoint['sessions.list'], 2);
    assert.equal(s.byEndpoint['sessions.get'], 1);
    assert.equal(s.byStatus['200'], 2);
    assert.equal(s.byStatus['404'], 1);
    assert.equal(s.byStatus['401'], 1);
    assert.deepEqual(
      sim.requests.map((r) => `${r.endpoint} ${r.status}`),
      ['oauth 200', 'sessions.list 200', 'sessions.get 404', 'sessions.list 401'],
    );
    sim.resetStats();
    assert.equal(sim.stats().total, 0);
    assert.equal(sim.requests.length, 0);
  });

  it('serves tolerated shapes on demand while its filters read the tidy session', async () => {
    const shaped = new Code42Simulator({ clock: () => T0, totalCount: 'omitted', extraStates: ['SNOOZED'] });
    const url = await shaped.start();
    try {
      const t = await token(url);
      const states = [
        { state: 'OPEN', stateV2: 'OPEN', sourceTimestamp: T0 - 20_000, userId: null },
        { state: 'SNOOZED', stateV2: 'SNOOZED', sourceTimestamp: T0 - 10_000, userId: 'u1' },
      ];
      const event = makeFileEvent(mulberry32(5), { '@timestamp': '2024-09-11T11:59:00.123Z' });
      shaped.addSession(session('s-all', { states }), { shapes: [...SESSION_SHAPES], events: [event] });
      shaped.addActor({ actorId: 'actor-1', name: 'a@example.com' }, { shape: 'name-null' });

      // No totalCount; the state filter reads the current state, and knows the extra state.
      const page = (await (await get(url, '/v1/sessions?state=SNOOZED', t)).json()) as Record<string, unknown>;
      assert.equal('totalCount' in page, false);
      const item = (page.items as Array<Record<string, unknown>>)[0] ?? {};
      assert.equal(item.sessionId, 's-all');
      assert.equal(item.beginTime, String(T0 - 60_000));
      const served = item.states as Array<Record<string, unknown>>;
      assert.deepEqual(served.map((s) => [s.state, s.stateV2, s.sourceTimestamp]), [
        [undefined, 'IN_PROGRESS', null],
        [undefined, 'OPEN', T0 - 20_000],
        [undefined, 'SNOOZED', T0 - 10_000],
        [undefined, 'CLOSED', T0 - 10_000],
      ]);
      assert.equal((item.triggeredAlerts as Array<Record<string, unknown>>).at(-1)?.ruleId, null);
      assert.equal((await list(url, 'state=OPEN', t)).items.length, 0);
      shaped.setStateFilter('any-in-history');
      assert.equal((await list(url, 'state=OPEN', t)).items.length, 1);
      shaped.setTotalCount('null');
      assert.equal((await list(url, 'state=OPEN', t)).totalCount, null);

      const events = (await (await get(url, '/v1/sessions/s-all/events', t)).json()) as { queryResult: { fileEvents: Array<Record<string, unknown>> } };
      assert.equal(events.queryResult.fileEvents[0]?.['@timestamp'], Date.parse('2024-09-11T11:59:00.123Z'));
      assert.equal(shaped.eventsOf('s-all')[0]?.['@timestamp'], '2024-09-11T11:59:00.123Z');
      assert.equal(shaped.getSession('s-all')?.states[1]?.state, 'SNOOZED');

      const actor = (await (await get(url, '/v1/actors/actor/id/actor-1', t)).json()) as Record<string, unknown>;
      assert.equal(actor.name, null);
    } finally {
      await shaped.close();
    }
  });

  it('mixes a few tolerated shapes into generated tenants, leaving the tidy data as before', () => {
    const opts = { sessions: 200, seed: 11, beginFrom: T0 - 3_600_000, beginTo: T0 };
    const mixed = generateTenant(opts);
    const plain = generateTenant({ ...opts, toleratedShapes: 0 });
    const shaped = mixed.sessions.filter((s) => s.shapes);
    assert.ok(shaped.length >= 8 && shaped.length <= 40, `${shaped.length} shaped sessions`);
    assert.ok(new Set(shaped.flatMap((s) => s.shapes ?? [])).size >= 4, 'several different shapes');
    assert.deepEqual(
      mixed.sessions.map((s) => s.session),
      plain.sessions.map((s) => s.session),
    );
  });

  it('generates the same tenant for the same seed and a different one for another seed', () => {
    const opts = { sessions: 40, beginFrom: T0 - 3_600_000, beginTo: T0, deletedRules: 2, withNames: true, lateFraction: 0.5 };
    const a = generateTenant({ ...opts, seed: 11 });
    const b = generateTenant({ ...opts, seed: 11 });
    const c = generateTenant({ ...opts, seed: 12 });
    assert.deepEqual(a, b);
    assert.notDeepEqual(a, c);

    assert.equal(a.rules.length, 6);
    assert.equal(a.deletedRuleIds.length, 2);
    const ids = new Set(a.sessions.map((s) => s.session.sessionId));
    assert.equal(ids.size, 40);
    for (const { session: s, events, visibleAt } of a.sessions) {
      assert.ok(s.endTime > s.beginTime && s.beginTime >= opts.beginFrom && s.beginTime < opts.beginTo);
      assert.ok(s.scores.length >= 1 && s.scores.length <= 3);
      assert.ok(s.states.length >= 1 && s.states.length <= 2);
      assert.ok(s.triggeredAlerts.length >= 1 && s.triggeredAlerts.every((x) => typeof x.ruleName === 'string'));
      assert.equal(typeof s.actorName, 'string');
      assert.match(s.exfiltrationSummary, /^\d+ .+ file\(s\) /);
      for (const e of events) assert.equal(e.user.email, s.actorName);
      if (visibleAt !== undefined) assert.ok(visibleAt > s.beginTime);
    }
    assert.ok(a.sessions.some((s) => s.visibleAt !== undefined));
    const skewed = generateTenant({
      sessions: 30,
      seed: 4,
      beginFrom: T0 - 1000,
      beginTo: T0,
      severityWeights: [0, 0, 0, 1, 0],
      stateWeights: { CLOSED_FP: 1 },
    });
    for (const { session: s } of skewed.sessions) {
      assert.equal(Math.max(...s.scores.map((x) => x.severity)), 3);
      const latest = [...s.states].sort((x, y) => x.sourceTimestamp - y.sourceTimestamp).at(-1);
      assert.equal(latest?.state, 'CLOSED_FP');
      assert.equal(latest?.stateV2, 'CLOSED_FP');
    }
    const plain = generateTenant({ sessions: 3, seed: 11, beginFrom: T0 - 1000, beginTo: T0 });
    assert.ok(plain.sessions.every((s) => s.session.actorName === undefined && s.session.triggeredAlerts.every((x) => !('ruleName' in x))));
  });
});
