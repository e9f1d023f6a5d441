import assert from 'node:assert/strict';
import { createHash, randomBytes } from 'node:crypto';
import { after, before, beforeEach, describe, it } from 'node:test';
import { XsoarSimulator, parseQuery, queryMatches } from './xsoar/index.js';
import type { SearchableIncident } from './xsoar/index.js';

const KEY = 'test-api-key-0123456789';
const KEY_ID = '17';

interface Reply {
  status: number;
  headers: Headers;
  body: any;
}

async function call(url: string, init: { method?: string; headers?: Record<string, string>; body?: unknown } = {}): Promise<Reply> {
  const method = init.method ?? (init.body === undefined ? 'GET' : 'POST');
  const headers: Record<string, string> = { accept: 'application/json', ...init.headers };
  let body: string | undefined;
  if (init.body !== undefined) {
    headers['content-type'] = 'application/json';
    body = typeof init.body === 'string' ? init.body : JSON.stringify(init.body);
  }
  const res = await fetch(url, { method, headers, body });
  const text = await res.text();
  let parsed: unknown = text;
  try {
    parsed = JSON.parse(text);
  } catch {
    // not JSON (e.g. a gateway page)
  }
  return { status: res.status, headers: res.headers, body: parsed };
}

function advancedHeaders(key: string, keyId: string, timestamp = Date.now().toString()): Record<string, string> {
  const nonce = randomBytes(32).toString('hex');
  const hash = createHash('sha256').update(key + nonce + timestamp, 'utf8').digest('hex');
  return { 'x-xdr-auth-id': keyId, 'x-xdr-nonce': nonce, 'x-xdr-timestamp': timestamp, authorization: hash };
}

function incident(extra: Record<string, unknown> = {}): Record<string, unknown> {
  return {
    name: 'Code42 - 3 files copied to removable media by jane@example.com',
    type: 'Code42 Security Alert',
    severity: 3,
    occurred: '2024-05-01T12:34:56+00:00',
    rawJSON: JSON.stringify({ sessionId: 'sess-1', actor: 'jane@example.com' }),
    labels: [
      { type: 'Instance', value: 'code42-forwarder' },
      { type: 'code42_session_id', value: 'sess-1' },
    ],
    CustomFields: { code42alertid: 'sess-1', code42alertstate: 'OPEN', code42username: 'jane@example.com' },
    createInvestigation: true,
    ...extra,
  };
}

describe('XSOAR simulator, 6.x flavour', () => {
  const sim = new XsoarSimulator({ apiKey: KEY });
  const auth = { authorization: KEY };
  before(async () => {
    await sim.start();
  });
  after(async () => {
    await sim.close();
  });
  beforeEach(() => sim.reset());

  it('answers a wrong key with 403 and the CSRF error body', async () => {
    const r = await call(`${sim.url}/about`, { headers: { authorization: 'nope' } });
    assert.equal(r.status, 403);
    assert.deepEqual(r.body, {
      id: 'forbidden',
      status: 403,
      title: 'Forbidden',
      detail: 'Issue with CSRF code',
      error: 'http: named cookie not present',
      encrypted: false,
      multires: null,
    });
    assert.equal(sim.stats().authFailures, 1);
  });

  it('serves /about and /health/server at the root', async () => {
    const about = await call(`${sim.url}/about`, { headers: auth });
    assert.equal(about.status, 200);
    assert.equal(about.body.demistoVersion, '6.14.0');
    assert.equal(about.body.deploymentMode, 'opp');
    assert.equal((await call(`${sim.url}/health/server`, { headers: auth })).status, 200);
    assert.equal((await call(`${sim.url}/xsoar/about`, { headers: auth })).status, 404);
  });

  it('creates an incident and answers with an IncidentWrapper', async () => {
    const r = await call(`${sim.url}/incident`, { headers: auth, body: incident({ dbotMirrorId: 'sess-1' }) });
    assert.equal(r.status, 200);
    assert.equal(r.body.id, '1');
    assert.equal(r.body.version, 1);
    assert.equal(r.body.status, 1);
    assert.equal(r.body.investigationId, '1');
    assert.equal(r.body.occurred, '2024-05-01T12:34:56Z');
    assert.equal(r.body.closed, '0001-01-01T00:00:00Z');
    assert.equal(r.body.dueDate, '0001-01-01T00:00:00Z');
    assert.equal(r.body.dbotMirrorId, 'sess-1');
    assert.equal(r.body.numericId, 1);
    assert.equal(r.body.CustomFields.code42username, 'jane@example.com');
    const second = await call(`${sim.url}/incident`, { headers: auth, body: incident({ createInvestigation: false }) });
    assert.equal(second.body.id, '2');
    assert.equal(second.body.status, 0);
    assert.equal(second.body.investigationId, '');
    assert.equal(sim.incidents().length, 2);
    assert.equal(sim.incidentsByMirrorId('sess-1').length, 1);
    const load = await call(`${sim.url}/incident/load/2`, { headers: auth });
    assert.equal(load.status, 200);
    assert.equal(load.body.id, '2');
    assert.equal((await call(`${sim.url}/incident/load/99`, { headers: auth })).status, 404);
  });

  it('rejects a string severity with a 400 that names severity', async () => {
    const r = await call(`${sim.url}/incident`, { headers: auth, body: incident({ severity: 'HIGH' }) });
    assert.equal(r.status, 400);
    assert.equal(r.body.id, 'bad_request');
    assert.equal(r.body.detail, 'Request body is not well-formed.\nIt must be JSON.');
    assert.match(r.body.error, /cannot unmarshal string into Go struct field CreateIncidentRequest\.severity/);
    const five = await call(`${sim.url}/incident`, { headers: auth, body: incident({ severity: 5 }) });
    assert.equal(five.status, 400);
    assert.match(five.body.error, /severity/);
    assert.equal(sim.incidents().length, 0);
  });

  it('rejects an occurred that is not RFC 3339', async () => {
    for (const occurred of ['2024-05-01 12:34:56', 1714566896000, '2024-13-01T00:00:00Z']) {
      const r = await call(`${sim.url}/incident`, { headers: auth, body: incident({ occurred }) });
      assert.equal(r.status, 400, `occurred ${String(occurred)}`);
      assert.match(r.body.error, /occurred/);
    }
    const ok = await call(`${sim.url}/incident`, { headers: auth, body: incident({ occurred: '2024-05-01T14:34:56.120+02:00' }) });
    assert.equal(ok.status, 200);
    assert.equal(ok.body.occurred, '2024-05-01T12:34:56.12Z');
  });

  it('rejects a rawJSON object, a numeric label value and a missing name', async () => {
    const raw = await call(`${sim.url}/incident`, { headers: auth, body: incident({ rawJSON: { a: 1 } }) });
    assert.equal(raw.status, 400);
    assert.match(raw.body.error, /cannot unmarshal object into Go struct field CreateIncidentRequest\.rawJSON of type string/);
    const label = await call(`${sim.url}/incident`, { headers: auth, body: incident({ labels: [{ type: 'n', value: 4 }] }) });
    assert.equal(label.status, 400);
    assert.match(label.body.error, /CreateIncidentRequest\.labels\.value of type string/);
    const noName = await call(`${sim.url}/incident`, { headers: auth, body: incident({ name: '' }) });
    assert.equal(noName.status, 400);
    assert.match(noName.body.detail, /name is required/);
    const notJson = await call(`${sim.url}/incident`, { headers: auth, body: 'name=x' });
    assert.equal(notJson.status, 400);
    assert.equal(notJson.body.detail, 'Request body is not well-formed.\nIt must be JSON.');
  });

  it('accepts lowercase customFields and stores unknown types as Unclassified', async () => {
    const body = incident({ type: 'Something Else' });
    delete body['CustomFields'];
    body['customFields'] = { code42username: 'bob@example.com', code42fileevents: [{ filename: 'a.txt', filesize: 3 }] };
    const r = await call(`${sim.url}/incident`, { headers: auth, body });
    assert.equal(r.status, 200);
    assert.equal(r.body.type, 'Unclassified');
    assert.equal(r.body.rawType, 'Something Else');
    const [stored] = sim.incidents();
    assert.equal(stored?.CustomFields['code42username'], 'bob@example.com');
    const nested = await call(`${sim.url}/incident`, { headers: auth, body: incident({ CustomFields: { x: { y: 1 } } }) });
    assert.equal(nested.status, 400);
  });

  it('answers 413 for a body over maxBodyBytes and 400 for an unknown playbook', async () => {
    const small = new XsoarSimulator({ apiKey: KEY, maxBodyBytes: 2048, knownPlaybooks: ['Code42 Exfiltration Playbook'] });
    await small.start();
    try {
      const big = await call(`${small.url}/incident`, { headers: auth, body: incident({ details: 'x'.repeat(4096) }) });
      assert.equal(big.status, 413);
      assert.equal(big.body.status, 413);
      const pb = await call(`${small.url}/incident`, { headers: auth, body: incident({ playbookId: 'Nope' }) });
      assert.equal(pb.status, 400);
      assert.equal(small.incidents().length, 0);
    } finally {
      await small.close();
    }
  });
});

describe('XSOAR simulator, 8.x flavour', () => {
  const sim = new XsoarSimulator({ apiKey: KEY, apiKeyId: KEY_ID });
  const standard = { authorization: KEY, 'x-xdr-auth-id': KEY_ID };
  before(async () => {
    await sim.start();
  });
  after(async () => {
    await sim.close();
  });
  beforeEach(() => sim.reset());

  it('accepts a standard key under /xsoar/public/v1 and /xsoar but not at the root', async () => {
    const pub = await call(`${sim.url}/xsoar/public/v1/about`, { headers: standard });
    assert.equal(pub.status, 200);
    assert.equal(pub.body.demistoVersion, '8.9.0');
    assert.equal(pub.body.deploymentMode, 'saas');
    assert.equal((await call(`${sim.url}/xsoar/about`, { headers: standard })).status, 200);
    assert.equal((await call(`${sim.url}/about`, { headers: standard })).status, 404);
    const created = await call(`${sim.url}/xsoar/incident`, { headers: standard, body: incident() });
    assert.equal(created.status, 200);
    assert.equal(sim.requests.at(-1)?.endpoint, 'create');
  });

  it('answers 401 with an XSOAR error body when the key id or the key is wrong', async () => {
    const noId = await call(`${sim.url}/xsoar/public/v1/about`, { headers: { authorization: KEY } });
    assert.equal(noId.status, 401);
    assert.equal(noId.body.id, 'unauthorized');
    assert.equal(noId.body.title, 'Unauthorized');
    const badKey = await call(`${sim.url}/xsoar/public/v1/about`, { headers: { authorization: 'x', 'x-xdr-auth-id': KEY_ID } });
    assert.equal(badKey.status, 401);
    assert.equal(sim.stats().authFailures, 2);
  });

  it('accepts advanced auth once and rejects a replayed nonce', async () => {
    const headers = advancedHeaders(KEY, KEY_ID);
    assert.equal((await call(`${sim.url}/xsoar/public/v1/about`, { headers })).status, 200);
    const replay = await call(`${sim.url}/xsoar/public/v1/about`, { headers });
    assert.equal(replay.status, 401);
    assert.match(replay.body.detail, /nonce/i);
    const secondsTimesThousand = String(Math.floor(Date.now() / 1000) * 1000);
    assert.equal((await call(`${sim.url}/xsoar/about`, { headers: advancedHeaders(KEY, KEY_ID, secondsTimesThousand) })).status, 200);
  });

  it('rejects advanced auth with a stale timestamp or a wrong hash', async () => {
    const stale = advancedHeaders(KEY, KEY_ID, String(Date.now() - 6 * 60 * 1000));
    assert.equal((await call(`${sim.url}/xsoar/about`, { headers: stale })).status, 401);
    const wrong = advancedHeaders('other-key', KEY_ID);
    assert.equal((await call(`${sim.url}/xsoar/about`, { headers: wrong })).status, 401);
  });
});

describe('XSOAR simulator search', () => {
  const sim = new XsoarSimulator({ apiKey: KEY });
  const auth = { authorization: KEY };
  const search = (filter: unknown): Promise<Reply> => call(`${sim.url}/incidents/search`, { headers: auth, body: { filter } });
  before(async () => {
    await sim.start();
    await call(`${sim.url}/incident`, { headers: auth, body: incident({ dbotMirrorId: 'sess-1' }) });
    await call(`${sim.url}/incident`, {
      headers: auth,
      body: incident({
        name: 'Code42 - upload by bob@example.com',
        severity: 1,
        dbotMirrorId: 'sess-2',
        labels: [{ type: 'code42_session_id', value: 'sess-2' }],
        CustomFields: { code42alertid: 'sess-2' },
      }),
    });
  });
  after(async () => {
    await sim.close();
  });

  it('finds an incident by dbotMirrorId and by type', async () => {
    const r = await search({ query: 'dbotMirrorId:"sess-2" and type:"Code42 Security Alert"', size: 5 });
    assert.equal(r.status, 200);
    assert.equal(r.body.total, 1);
    assert.equal(r.body.data[0].id, '2');
    const both = await search({ query: 'dbotMirrorId:"sess-1" OR dbotMirrorId:"sess-2"', size: 5 });
    assert.deepEqual(both.body.data.map((i: { id: string }) => i.id), ['1', '2']);
  });

  it('finds an incident by label, by label type and by free text', async () => {
    assert.equal((await search({ query: 'code42_session_id:"sess-1"', size: 5 })).body.total, 1);
    assert.equal((await search({ query: 'labels.value:"sess-2"', size: 5 })).body.data[0].id, '2');
    assert.equal((await search({ query: 'labels.type:"Instance"', size: 5 })).body.total, 1);
    assert.equal((await search({ query: '"bob@example.com"', size: 5 })).body.total, 1);
    assert.equal((await search({ query: '(severity:3 or severity:low) and -name:"upload"', size: 5 })).body.total, 1);
  });

  it('matches nothing on the unsearchable code42alertid and code42alertstate fields', async () => {
    assert.equal((await search({ query: 'code42alertid:"sess-1"', size: 5 })).body.total, 0);
    assert.equal((await search({ query: 'code42alertstate:OPEN', size: 5 })).body.total, 0);
    assert.equal((await search({ query: 'code42username:"jane@example.com"', size: 5 })).body.total, 1);
  });

  it('returns no incidents when size is 0 and pages with size and page', async () => {
    const none = await search({ query: 'type:"Code42 Security Alert"' });
    assert.equal(none.body.total, 2);
    assert.deepEqual(none.body.data, []);
    const page1 = await search({ size: 1, page: 1 });
    assert.equal(page1.body.data[0].id, '2');
    const byId = await search({ id: ['1'], size: 10 });
    assert.equal(byId.body.total, 1);
  });

  it('answers 400 without a filter or with a broken query', async () => {
    assert.equal((await call(`${sim.url}/incidents/search`, { headers: auth, body: { query: 'x' } })).status, 400);
    assert.equal((await search({ query: 'name:"unterminated', size: 1 })).status, 400);
    assert.equal((await search({ size: '10' })).status, 400);
  });

  it('parses and/or precedence and parentheses in the query helper', () => {
    const inc: SearchableIncident = {
      id: '5', name: 'Alpha beta', type: 'T', status: 1, severity: 2, created: '2024-05-01T00:00:00Z',
      modified: '2024-05-01T00:00:00Z', occurred: '2024-05-01T00:00:00Z', labels: [], CustomFields: {}, rawJSON: '{}',
    };
    assert.equal(queryMatches('id:1 or id:5 and type:T', inc), true);
    assert.equal(queryMatches('(id:1 or id:5) AND type:X', inc), false);
    assert.equal(queryMatches('name:beta severity:>=2 status:active', inc), true);
    assert.equal(queryMatches('created:>="2024-04-30T00:00:00Z"', inc), true);
    assert.equal(parseQuery('  ').kind, 'all');
  });

  it('ignores a client dbotMirrorId when keepDbotMirrorId is false', async () => {
    const other = new XsoarSimulator({ apiKey: KEY, keepDbotMirrorId: false });
    await other.start();
    try {
      const r = await call(`${other.url}/incident`, { headers: auth, body: incident({ dbotMirrorId: 'sess-9' }) });
      assert.equal(r.body.dbotMirrorId, '');
      const s = await call(`${other.url}/incidents/search`, { headers: auth, body: { filter: { query: 'dbotMirrorId:"sess-9"', size: 1 } } });
      assert.equal(s.body.total, 0);
      assert.equal(other.incidentsByMirrorId('sess-9').length, 1);
    } finally {
      await other.close();
    }
  });
});

describe('XSOAR simulator faults', () => {
  const sim = new XsoarSimulator({ apiKey: KEY });
  const auth = { authorization: KEY };
  const create = (extra: Record<string, unknown> = {}): Promise<Reply> =>
    call(`${sim.url}/incident`, { headers: auth, body: incident(extra) });
  before(async () => {
    await sim.start();
  });
  after(async () => {
    await sim.close();
  });
  beforeEach(() => sim.reset());

  it('stores the incident and then destroys the socket on a lost response', async () => {
    sim.setFaults({ lostResponseRate: 1 });
    await assert.rejects(create());
    assert.equal(sim.incidents().length, 1);
    assert.equal(sim.requests.at(-1)?.status, 0);
    assert.equal(sim.stats().byStatus['0'], 1);
  });

  it('stores the incident and then answers 5xx on errorAfterStore', async () => {
    sim.setFaults({ errorAfterStoreRate: 1 });
    const first = await create();
    const second = await create();
    for (const r of [first, second]) assert.ok(r.status === 500 || r.status === 502, `status ${r.status}`);
    assert.equal(sim.stats().stored, 2);
  });

  it('answers 500 without storing on errorRate', async () => {
    sim.setFaults({ errorRate: 1 });
    const r = await create();
    assert.equal(r.status, 500);
    assert.equal(r.body.id, 'internal_error');
    assert.equal(sim.incidents().length, 0);
  });

  it('answers every request 503 during an outage', async () => {
    sim.outage(60_000);
    const about = await call(`${sim.url}/about`, { headers: auth });
    assert.equal(about.status, 503);
    assert.equal(about.body.status, 503);
    assert.equal((await create()).status, 503);
    assert.equal(sim.incidents().length, 0);
    sim.outage(0);
    assert.equal((await create()).status, 200);
  });

  it('answers the next creates 429 with Retry-After, then recovers', async () => {
    sim.rateLimitNext(2, 7);
    const a = await create();
    assert.equal(a.status, 429);
    assert.equal(a.headers.get('retry-after'), '7');
    const s = await call(`${sim.url}/incidents/search`, { headers: auth, body: { filter: { size: 1 } } });
    assert.equal(s.status, 429);
    assert.equal((await create()).status, 200);
    assert.equal(sim.stats().creates, 2);
    assert.equal(sim.stats().searches, 1);
  });

  it('rejects the next creates with the given detail', async () => {
    sim.rejectNext(1, 'Mandatory field code42severity is missing');
    const r = await create();
    assert.equal(r.status, 400);
    assert.equal(r.body.detail, 'Mandatory field code42severity is missing');
    assert.equal((await create()).status, 200);
  });

  it('stores the incident and answers only after slowMs on a slow response', async () => {
    sim.setFaults({ slowRate: 1, slowMs: 5_000 });
    const started = Date.now();
    await assert.rejects(
      fetch(`${sim.url}/incident`, {
        method: 'POST',
        headers: { ...auth, 'content-type': 'application/json' },
        body: JSON.stringify(incident()),
        signal: AbortSignal.timeout(150),
      }),
    );
    assert.ok(Date.now() - started < 2_000);
    assert.equal(sim.incidents().length, 1);
  });

  it('adds latencyMs to every answer', async () => {
    sim.setFaults({ latencyMs: 60 });
    const started = Date.now();
    assert.equal((await call(`${sim.url}/health/server`, { headers: auth })).status, 200);
    assert.ok(Date.now() - started >= 55);
  });
});

describe('XSOAR simulator real-server readings', () => {
  const auth = { authorization: KEY };

  it('answers a create without an id, with null or with {} when told to, and still stores it', async () => {
    for (const createAnswer of ['noId', 'null', 'empty'] as const) {
      const sim = new XsoarSimulator({ apiKey: KEY, createAnswer });
      await sim.start();
      try {
        const r = await call(`${sim.url}/incident`, { headers: auth, body: incident() });
        assert.equal(r.status, 200);
        assert.equal(r.body?.id, undefined, createAnswer);
        assert.equal(sim.incidents().length, 1);
      } finally {
        await sim.close();
      }
    }
  });

  it('in strict mode matches only fields a server indexes, and answers 400 to a query it cannot parse', async () => {
    const sim = new XsoarSimulator({ apiKey: KEY, strictQuery: true });
    await sim.start();
    try {
      await call(`${sim.url}/incident`, { headers: auth, body: incident({ details: 'Code42 alert session sess-1 (high, OPEN).' }) });
      const total = async (query: string): Promise<number> =>
        (await call(`${sim.url}/incidents/search`, { headers: auth, body: { filter: { query, size: 5 } } })).body.total as number;
      assert.equal(await total('labels.type:code42_session_id and labels.value:"sess-1"'), 1);
      assert.equal(await total('details:"sess-1"'), 1);
      assert.equal(await total('code42username:"jane@example.com"'), 1);
      assert.equal(await total('code42_session_id:"sess-1"'), 0, 'a label type is no field');
      assert.equal(await total('labels.code42_session_id:"sess-1"'), 0);
      assert.equal(await total('"jane@example.com"'), 0, 'no free text');
      const bad = await call(`${sim.url}/incidents/search`, { headers: auth, body: { filter: { query: 'details:"open', size: 1 } } });
      assert.equal(bad.status, 400);
    } finally {
      await sim.close();
    }
  });

  it('hides an incident from search for indexLagMs, and drops creates at preProcessDropRate with a 200', async () => {
    const sim = new XsoarSimulator({ apiKey: KEY, indexLagMs: 400 });
    await sim.start();
    try {
      await call(`${sim.url}/incident`, { headers: auth, body: incident() });
      const find = async (): Promise<number> =>
        (await call(`${sim.url}/incidents/search`, { headers: auth, body: { filter: { query: 'labels.value:"sess-1"', size: 5 } } })).body.total as number;
      assert.equal(await find(), 0);
      await new Promise((resolve) => setTimeout(resolve, 450));
      assert.equal(await find(), 1);
      sim.setMode({ preProcessDropRate: 1 });
      const dropped = await call(`${sim.url}/incident`, { headers: auth, body: incident() });
      assert.equal(dropped.status, 200);
      assert.equal(dropped.body, null);
      assert.equal(sim.incidents().length, 1);
      assert.equal(sim.droppedCount(), 1);
    } finally {
      await sim.close();
    }
  });

  it('runs the after-store hook before answering', async () => {
    const sim = new XsoarSimulator({ apiKey: KEY });
    await sim.start();
    try {
      const seen: string[] = [];
      sim.onStored((inc) => {
        seen.push(inc.id);
      });
      const r = await call(`${sim.url}/incident`, { headers: auth, body: incident() });
      assert.deepEqual(seen, [r.body.id]);
    } finally {
      await sim.close();
    }
  });

  it('runs the write hook after a close is applied and before answering', async () => {
    const sim = new XsoarSimulator({ apiKey: KEY });
    await sim.start();
    try {
      const created = await call(`${sim.url}/incident`, { headers: auth, body: incident() });
      const seen: Array<[string, number, number | undefined]> = [];
      sim.onWriteRequest((endpoint, body, status) => {
        seen.push([endpoint, status, sim.incidents().find((i) => i.id === body.id)?.status]);
      });
      const closed = await call(`${sim.url}/incident/close`, { headers: auth, body: { id: created.body.id, version: created.body.version, closeReason: 'Resolved' } });
      assert.equal(closed.status, 200);
      // Seen as applied (status 2) before the client had the answer; creates and reads do not go through it.
      assert.deepEqual(seen, [['close', 200, 2]]);
      sim.onWriteRequest(undefined);
      await call(`${sim.url}/incident/close`, { headers: auth, body: { id: created.body.id, version: -1, closeReason: 'Resolved' } });
      assert.equal(seen.length, 1);
    } finally {
      await sim.close();
    }
  });
});
