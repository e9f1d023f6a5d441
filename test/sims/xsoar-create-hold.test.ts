import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { XsoarSimulator } from './xsoar/index.js';

const KEY = 'test-api-key-0123456789';

function create(sim: XsoarSimulator, mirrorId: string, signal?: AbortSignal): Promise<Response> {
  return fetch(`${sim.url}/incident`, {
    method: 'POST',
    headers: { authorization: KEY, 'content-type': 'application/json', accept: 'application/json' },
    body: JSON.stringify({ name: `incident ${mirrorId}`, type: 'Code42 Security Alert', severity: 2, dbotMirrorId: mirrorId, CustomFields: { code42alertid: mirrorId } }),
    ...(signal ? { signal } : {}),
  });
}

describe('XSOAR simulator fault points: held creates, deleted incidents', { timeout: 30_000 }, () => {
  const sim = new XsoarSimulator({ apiKey: KEY });
  before(() => sim.start());
  after(() => sim.close());

  it('stores the next N creates and answers them only once released', async () => {
    const hold = sim.holdCreates(2);
    let answered = 0;
    const pending = ['a', 'b'].map((id) => create(sim, id).then((r) => ((answered += 1), r)));
    await hold.whenHeld(2, 5_000);
    assert.deepEqual(hold.heldMirrorIds(), ['a', 'b']);
    assert.equal(sim.incidents().length, 2, 'stored while the answers are held');
    assert.equal(hold.waiting, 2);
    assert.equal(answered, 0);
    // Only two were armed: the third is answered at once.
    assert.equal((await create(sim, 'c')).status, 200);
    hold.release();
    assert.deepEqual(hold.heldMirrorIds(), []);
    for (const res of await Promise.all(pending)) assert.equal(res.status, 200);
    assert.equal(hold.waiting, 0);
  });

  it('a client that goes away while held leaves the incident stored', async () => {
    const hold = sim.holdCreates(1);
    const gone = new AbortController();
    const request = create(sim, 'd', gone.signal).catch((err: unknown) => err);
    await hold.whenHeld(1, 5_000);
    assert.deepEqual(hold.heldMirrorIds(), ['d']);
    gone.abort();
    assert.ok((await request) instanceof Error);
    assert.equal(sim.incidentsByMirrorId('d').length, 1);
    hold.release();
  });

  it('deletes incidents by id', async () => {
    const ids = sim.incidents().filter((i) => i.dbotMirrorId === 'a' || i.dbotMirrorId === 'b').map((i) => i.id);
    assert.equal(sim.deleteIncidents(ids), 2);
    assert.deepEqual(sim.incidents().map((i) => i.dbotMirrorId).sort(), ['c', 'd']);
    assert.equal(sim.deleteIncidents(ids), 0);
  });
});
