/**
 * The wire side of the sync on its own: the simulators' lifecycle endpoints as the daemon's clients use them,
 * and the configuration of the sync.
 */
import assert from 'node:assert/strict';
import { afterEach, describe, it } from 'node:test';
import { IncydrClient } from '../../src/code42/incydr-client.js';
import { Code42RequestError } from '../../src/code42/errors.js';
import { SessionActions, fitNote } from '../../src/code42/session-actions.js';
import { ConfigError, loadConfig } from '../../src/config/index.js';
import { IncidentUpdates, XsoarVersionConflictError } from '../../src/xsoar/incident-updates.js';
import { XsoarClient } from '../../src/xsoar/xsoar-client.js';
import { closeReasonForState, stateForCloseReason } from '../../src/sync/close-reasons.js';
import { Code42Simulator } from '../sims/code42/index.js';
import { XsoarSimulator, type LifecycleModes } from '../sims/xsoar/index.js';

const KEY = 'xsoar-wire-test-key';

describe('sync wire calls against the simulators', () => {
  const closers: Array<() => Promise<void>> = [];
  afterEach(async () => {
    for (const c of closers.splice(0)) await c();
  });

  async function xsoarWithIncident(modes: LifecycleModes = {}): Promise<{ sim: XsoarSimulator; updates: IncidentUpdates; id: string }> {
    const sim = new XsoarSimulator({ apiKey: KEY, lifecycle: modes });
    await sim.start();
    closers.push(() => sim.close());
    const client = new XsoarClient({ url: sim.url, apiKey: KEY, apiKeyId: null, authType: 'standard', timeoutMs: 5_000 });
    const { id } = await client.createIncident({
      name: 'Code42 - test',
      type: 'Code42 Security Alert',
      severity: 2,
      occurred: '2024-05-01T12:00:00+00:00',
      details: '',
      rawJSON: '{}',
      labels: [],
      CustomFields: { code42alertid: 's-1', code42severity: 'MODERATE' },
      dbotMirrorId: 's-1',
      sourceBrand: 'Code42',
      createInvestigation: true,
    });
    if (!id) throw new Error('the simulator answered the create without an id');
    return { sim, updates: new IncidentUpdates(client, { maxConflictRetries: 2 }), id };
  }

  it('updates with the current version, reloads and merges on a DB version error, and gives up after the bound', async () => {
    const { sim, updates, id } = await xsoarWithIncident();
    sim.lifecycle.editByHand(id, { owner: 'alice' });
    sim.lifecycle.conflictNext(2);
    const outcome = await updates.update(id, (cur) => (cur.CustomFields.code42severity === 'HIGH' ? null : { fields: { severity: 3 }, customFields: { code42severity: 'HIGH' } }));
    assert.equal(outcome.writes, 3, 'two conflicts, then the write');
    const [inc] = sim.incidents();
    assert.equal(inc?.severity, 3);
    assert.equal(inc?.owner, 'alice', 'the analyst\'s owner survives a replacing update');
    assert.equal(inc?.CustomFields.code42alertid, 's-1');
    sim.lifecycle.conflictNext(5);
    await assert.rejects(updates.update(id, () => ({ fields: {}, customFields: { code42severity: 'CRITICAL' } })), XsoarVersionConflictError);
  });

  it('closes with the version, finds the close by the closed-date range, and notes through /entry/note or /entry', async () => {
    for (const entryNote of ['create', 'mark-only'] as const) {
      const { sim, updates, id } = await xsoarWithIncident({ entryNote });
      await updates.addNote(id, 'a note');
      assert.equal(sim.lifecycle.entriesOf(id)[0]?.contents, 'a note', `note stored (${entryNote})`);
      assert.deepEqual(await updates.entryTexts(id, Date.now() - 60_000), ['a note']);
      const before = Date.now() - 1;
      const closed = await updates.close(id, 'Resolved', 'done');
      assert.equal(closed.status, 2);
      assert.equal(closed.closeReason, 'Resolved');
      const found = await updates.searchClosed('Code42 Security Alert', before, Date.now() + 1);
      assert.deepEqual(found.map((f) => f.id), [id]);
      assert.deepEqual(await updates.searchClosed('Code42 Security Alert', before - 60_000, before - 30_000), [], 'outside the range');
    }
  });

  it('sets session states 100 ids per call, falls back to one id per call when a batch is refused, and adds notes of at most 2,000 characters', async () => {
    const sim = new Code42Simulator();
    await sim.start();
    closers.push(() => sim.close());
    const ids = Array.from({ length: 150 }, (_, i) => sim.addSession({ sessionId: `s-${i}` }).sessionId);
    const client = new IncydrClient({ apiUrl: sim.url, clientId: 'key-sim-client', clientSecret: 'sim-client-secret', timeoutMs: 5_000 });
    const actions = new SessionActions(client);
    const result = await actions.changeState(ids, 'CLOSED_FP');
    assert.equal(result.calls, 2);
    assert.equal(result.changed.length, 150);
    assert.ok(ids.every((id) => sim.stateOf(id) === 'CLOSED_FP'));

    const mixed = await actions.changeState(['s-1', 'gone', 's-2'], 'CLOSED_TP');
    assert.deepEqual(mixed.changed, ['s-1', 's-2']);
    assert.deepEqual(mixed.refused.map((r) => r.id), ['gone']);
    assert.equal(mixed.calls, 4, 'the refused batch, then one call per id');

    await actions.addNote('s-1', 'x'.repeat(2_500));
    const note = sim.notesOf('s-1')[0]?.content ?? '';
    assert.equal(note.length, 2_000);
    assert.equal(note, fitNote('x'.repeat(2_500)));
    await assert.rejects(actions.addNote('gone', 'hello'), (err: unknown) => err instanceof Code42RequestError && err.statusCode === 404);
    assert.equal(sim.stats().byEndpoint['sessions.changeState'], 6);
  });

  it('reads the sync configuration, and refuses a close mapping to a state that is not closed', () => {
    const env = {
      CODE42_API_URL: 'https://api.us.code42.com',
      CODE42_CLIENT_ID: 'key-abc',
      CODE42_CLIENT_SECRET: 'secret',
      XSOAR_URL: 'https://xsoar.example.com',
      XSOAR_API_KEY: 'key',
    };
    const config = loadConfig({ env });
    assert.equal(config.sync.trackUpdates, true);
    assert.equal(config.sync.stateSync, 'to-xsoar', 'nothing is written to Code42 unless asked');
    assert.equal(config.sync.updateInterval, 180_000);
    assert.equal(config.sync.interval, 60_000);
    assert.equal(config.sync.reopenOnNewData, true);
    assert.equal(stateForCloseReason('false positive', config.sync.closeReasonStates), 'CLOSED_FP');
    assert.equal(stateForCloseReason('Resolved', config.sync.closeReasonStates), 'CLOSED_TP');
    assert.equal(stateForCloseReason('Duplicate', config.sync.closeReasonStates), 'CLOSED');
    assert.equal(closeReasonForState('CLOSED_TP_BENIGN', config.sync.stateCloseReasons), 'Resolved');
    assert.equal(closeReasonForState('CLOSED', config.sync.stateCloseReasons), 'Other');

    const custom = loadConfig({ env: { ...env, STATE_SYNC: 'to-code42', STATE_SYNC_CLOSE_REASONS: 'Duplicate=CLOSED_TP_BENIGN, *=CLOSED_TP', STATE_SYNC_INTERVAL: '30s' } });
    assert.equal(custom.sync.stateSync, 'to-code42');
    assert.equal(custom.sync.interval, 30_000);
    assert.equal(stateForCloseReason('Duplicate', custom.sync.closeReasonStates), 'CLOSED_TP_BENIGN');
    assert.equal(stateForCloseReason('Resolved', custom.sync.closeReasonStates), 'CLOSED_TP');

    assert.throws(
      () => loadConfig({ env: { ...env, STATE_SYNC: 'sometimes', STATE_SYNC_CLOSE_REASONS: 'Resolved=OPEN' } }),
      (err: unknown) =>
        err instanceof ConfigError &&
        err.problems.some((p) => p.startsWith('sync.stateSync (STATE_SYNC)')) &&
        err.problems.some((p) => p.startsWith('sync.closeReasonStates (STATE_SYNC_CLOSE_REASONS)') && p.includes('unknown closed state "OPEN"')),
    );
  });
});
