/**
 * The two sides never left disagreeing: each case where an earlier sync left the incident and the session
 * in different states, played with the daemon's own poller noticing the Code42 side. Each ends with both
 * sides in the same, newest state, one note saying what happened, and nothing more written over three
 * further state-sync runs (no loop).
 */
import assert from 'node:assert/strict';
import { afterEach, describe, it } from 'node:test';
import { Daemon } from '../../src/daemon.js';
import type { StoredIncident } from '../sims/xsoar/index.js';
import { SyncState, syncKeys } from '../../src/sync/sync-state.js';
import { silentLogger } from '../helpers/logs.js';
import { testRedis } from '../helpers/redis.js';
import { NEW_RULE, escalate, seedSessions } from '../helpers/session-changes.js';
import { stopDaemonAndStack } from '../helpers/in-process-daemon.js';
import { startStack, type Stack } from '../helpers/stack.js';
import { waitFor } from '../helpers/wait.js';

type Closed = StoredIncident & { lifecycle?: { closeReason?: string; closeNotes?: string; closed?: string } };

async function metricValue(daemon: Daemon, name: string): Promise<number> {
  const text = await daemon.metrics.text();
  const line = text.split('\n').find((l) => l.startsWith(`code42_forwarder_${name} `));
  return line ? Number(line.split(' ').at(-1)) : 0;
}

describe('the incident and the session never left disagreeing', () => {
  let stack: Stack | undefined;
  let daemon: Daemon | undefined;

  afterEach(async () => {
    await stopDaemonAndStack(daemon, stack);
    [daemon, stack] = [undefined, undefined];
  });

  const ENV = { STATE_SYNC: 'both', STATE_SYNC_INTERVAL: '400ms', UPDATE_INTERVAL: '0ms', SWEEP_INTERVAL: '1s' };

  async function forwarded(tag: string, n = 1, env: Record<string, string> = {}): Promise<{ s: Stack; ids: string[]; incidentOf: (id: string) => Closed }> {
    stack = await startStack({ name: `agree-${tag}`, env: { ...ENV, ...env } });
    const s = stack;
    const ids = seedSessions(s.code42, n, tag);
    daemon = new Daemon({ config: s.config(), logger: silentLogger() });
    await daemon.start();
    await waitFor(() => s.xsoar.incidents().length >= n, { timeoutMs: 20_000, what: `${n} incidents` });
    const incidentOf = (id: string): Closed => s.xsoar.incidents().find((i) => i.dbotMirrorId === id) as Closed;
    return { s, ids, incidentOf };
  }

  /** Three more state-sync runs (and sweeps) change nothing on either side. */
  async function settled(s: Stack): Promise<void> {
    const d = daemon as Daemon;
    const snapshot = (): string =>
      JSON.stringify({
        versions: s.xsoar.incidents().map((x) => [x.id, x.version]),
        writes: s.code42.requests.filter((r) => r.endpoint === 'sessions.changeState' || r.endpoint === 'sessions.addNote').length,
      });
    // Quiet first (the poller's sweep has seen the last write), then three runs with nothing written.
    await waitFor(
      async () => {
        const before = snapshot();
        const runs = await metricValue(d, 'sync_runs_total');
        await waitFor(async () => (await metricValue(d, 'sync_runs_total')) >= runs + 3, { timeoutMs: 10_000, what: 'three state-sync runs' });
        return snapshot() === before;
      },
      { timeoutMs: 30_000, intervalMs: 10, what: 'both sides settled (no loop)' },
    );
  }

  it('an XSOAR close followed 300 ms later by new data in Incydr: both open, the close is not written over OPEN_NEW_DATA', async () => {
    const { s, ids, incidentOf } = await forwarded('newdata');
    const id = ids[0] as string;
    // The state sync cannot read the session meanwhile (503): the new data surely lands before its read,
    // not between its read and its write (about one round trip, see the README).
    s.code42.failNext(100_000, { status: 503, path: /^\/v1\/sessions\/[^/]+$/ });
    s.xsoar.lifecycle.closeByHand(incidentOf(id).id, 'False Positive', 'looks fine', 'bob');
    await new Promise((r) => setTimeout(r, 300));
    escalate(s.code42, id, { newEvents: 2, ruleId: NEW_RULE.id, seed: 1 });
    s.code42.clearFaults();
    await waitFor(() => incidentOf(id).status === 1 && s.code42.stateOf(id) === 'OPEN_NEW_DATA', { timeoutMs: 20_000, what: 'both open' });
    await settled(s);
    assert.equal(incidentOf(id).status, 1, 'reopened on the newer data');
    assert.equal(s.code42.stateOf(id), 'OPEN_NEW_DATA', 'the newer Incydr state kept');
    const warRoom = s.xsoar.lifecycle.entriesOf(incidentOf(id).investigationId).map((e) => e.contents);
    assert.equal(warRoom.length, 1);
    assert.match(warRoom[0] ?? '', /state OPEN_NEW_DATA; incident reopened/);
    const sessionNotes = s.code42.notesOf(id).map((n) => n.content);
    assert.equal(sessionNotes.length, 1);
    assert.match(sessionNotes[0] ?? '', /as "False Positive" by bob .*\n\nNot carried: the session went to OPEN_NEW_DATA at .*, after this close\.$/);
    assert.equal(s.code42.requests.filter((r) => r.endpoint === 'sessions.changeState').length, 0);
  });

  it('the daemon set CLOSED_FP, Incydr reopened, an analyst set CLOSED_FP again: the incident is closed (the own-write record was cleared)', async () => {
    const { s, ids, incidentOf } = await forwarded('reclose');
    const id = ids[0] as string;
    s.xsoar.lifecycle.closeByHand(incidentOf(id).id, 'False Positive', 'first look', 'bob');
    await waitFor(() => s.code42.stateOf(id) === 'CLOSED_FP', { timeoutMs: 15_000, what: 'the close carried to Incydr' });
    escalate(s.code42, id, { newEvents: 1, ruleId: NEW_RULE.id, seed: 2 });
    await waitFor(() => incidentOf(id).status === 1, { timeoutMs: 15_000, what: 'reopened on new data' });
    s.code42.consoleChangeState(id, 'CLOSED_FP', 'carol@example.com');
    await waitFor(() => incidentOf(id).status === 2, { timeoutMs: 15_000, what: 'closed again from Incydr' });
    await settled(s);
    const inc = incidentOf(id);
    assert.equal(inc.lifecycle?.closeReason, 'False Positive');
    assert.match(inc.lifecycle?.closeNotes ?? '', /^Closed in Code42 Incydr by carol@example\.com/);
    assert.equal(s.code42.stateOf(id), 'CLOSED_FP');
  });

  it('the daemon closed the incident, an analyst reopened it and closed it again keeping the close notes: the new close reaches Incydr', async () => {
    const { s, ids, incidentOf } = await forwarded('keepnotes');
    const id = ids[0] as string;
    s.code42.consoleChangeState(id, 'CLOSED_FP', 'carol@example.com');
    await waitFor(() => incidentOf(id).status === 2, { timeoutMs: 15_000, what: 'closed from Incydr' });
    const notes = incidentOf(id).lifecycle?.closeNotes ?? '';
    assert.match(notes, /^Closed in Code42 Incydr by /);
    s.xsoar.lifecycle.reopenByHand(incidentOf(id).id);
    await new Promise((r) => setTimeout(r, 20));
    s.xsoar.lifecycle.closeByHand(incidentOf(id).id, 'Resolved', notes, 'bob');
    await waitFor(() => s.code42.stateOf(id) === 'CLOSED_TP', { timeoutMs: 15_000, what: 'the analyst close carried' });
    await settled(s);
    assert.equal(incidentOf(id).status, 2);
    const sessionNotes = s.code42.notesOf(id);
    assert.equal(sessionNotes.length, 1);
    assert.match(sessionNotes[0]?.content ?? '', /^Closed in Cortex XSOAR .* as "Resolved" by bob .*\n\nThis later close replaces the state CLOSED_FP set by carol@example\.com at /);
  });

  it('an analyst closed the session in Incydr, a later XSOAR close differs: the newer close wins on both sides, with a note naming what it replaced', async () => {
    const { s, ids, incidentOf } = await forwarded('later');
    const id = ids[0] as string;
    s.code42.consoleChangeState(id, 'CLOSED_TP', 'carol@example.com');
    // Closed in XSOAR before the daemon carried the Incydr close: a later close.
    s.xsoar.lifecycle.closeByHand(incidentOf(id).id, 'False Positive', 'benign test file', 'bob');
    await waitFor(() => s.code42.stateOf(id) === 'CLOSED_FP', { timeoutMs: 15_000, what: 'the later XSOAR close carried' });
    await settled(s);
    assert.equal(incidentOf(id).lifecycle?.closeReason, 'False Positive');
    const note = s.code42.notesOf(id)[0]?.content ?? '';
    assert.match(note, /as "False Positive" by bob .*: benign test file\.\n\nThis later close replaces the state CLOSED_TP set by carol@example\.com at /);
    assert.equal(s.code42.notesOf(id).length, 1);
    // Closed on both sides: the sync record expires once the session is out of DEEP_LOOKBACK (7 d after its
    // begin, 10 min ago), plus 7 days.
    const redis = testRedis();
    try {
      const ttl = await redis.pttl(syncKeys(s.prefix).session(id));
      const day = 24 * 3_600_000;
      assert.ok(ttl > 13.9 * day && ttl <= 14 * day, `record expires in ${ttl} ms`);
    } finally {
      redis.disconnect();
    }
  });

  it('an XSOAR close older than the Incydr close it meets: not written, and the session note says why', async () => {
    const { s, ids, incidentOf } = await forwarded('older');
    const id = ids[0] as string;
    s.xsoar.lifecycle.closeByHand(incidentOf(id).id, 'False Positive', 'fine', 'bob');
    await new Promise((r) => setTimeout(r, 5));
    s.code42.consoleChangeState(id, 'CLOSED_TP', 'carol@example.com');
    await waitFor(() => s.code42.notesOf(id).length === 1, { timeoutMs: 15_000, what: 'a note on the session' });
    await settled(s);
    assert.equal(s.code42.stateOf(id), 'CLOSED_TP', 'the newer Incydr close kept');
    assert.equal(incidentOf(id).status, 2, 'both closed');
    assert.match(s.code42.notesOf(id)[0]?.content ?? '', /\n\nNot carried: the session went to CLOSED_TP \(by carol@example\.com\) at .*, after this close\.$/);
    assert.equal(s.code42.requests.filter((r) => r.endpoint === 'sessions.changeState').length, 0);
  });

  it('closes made on both sides while STATE_SYNC=off are carried once it is switched on', async () => {
    const { s, ids, incidentOf } = await forwarded('off', 2, { STATE_SYNC: 'off' });
    const [inIncydr, inXsoar] = ids as [string, string];
    s.code42.consoleChangeState(inIncydr, 'CLOSED_TP', 'carol@example.com');
    s.xsoar.lifecycle.closeByHand(incidentOf(inXsoar).id, 'False Positive', 'fine', 'bob');
    const redis = testRedis();
    try {
      const state = new SyncState(redis, syncKeys(s.prefix));
      await waitFor(async () => (await state.heldSessionIds()).includes(inIncydr), { timeoutMs: 15_000, what: 'the Incydr close held' });
      assert.equal(incidentOf(inIncydr).status, 1, 'not closed while off');
      await (daemon as Daemon).stop();
      daemon = new Daemon({ config: s.config({ STATE_SYNC: 'both' }), logger: silentLogger() });
      await daemon.start();
      await waitFor(() => incidentOf(inIncydr).status === 2 && s.code42.stateOf(inXsoar) === 'CLOSED_FP', { timeoutMs: 15_000, what: 'both closes carried' });
      await settled(s);
      assert.equal(incidentOf(inIncydr).lifecycle?.closeReason, 'Resolved');
      assert.match(incidentOf(inIncydr).lifecycle?.closeNotes ?? '', /^Closed in Code42 Incydr by carol@example\.com/);
      assert.deepEqual(await state.heldSessionIds(), []);
      assert.equal(s.code42.stateOf(inIncydr), 'CLOSED_TP', 'the daemon\'s close of the incident is not carried back');
    } finally {
      redis.disconnect();
    }
  });
  it('changes made while TRACK_UPDATES=false reach the incident once it is on: its fields, and one note telling what happened meanwhile', async () => {
    const { s, ids, incidentOf } = await forwarded('trackoff', 1, { TRACK_UPDATES: 'false' });
    const id = ids[0] as string;
    const versionBefore = incidentOf(id).version;
    // Two changes while off: new events, an escalation and a new rule, then one more event.
    escalate(s.code42, id, { newEvents: 2, ruleId: NEW_RULE.id, seed: 3 });
    const redis = testRedis();
    try {
      const state = new SyncState(redis, syncKeys(s.prefix));
      await waitFor(async () => (await state.heldUpdateIds()).includes(id), { timeoutMs: 15_000, what: 'the first change held' });
      s.code42.updateSession(id, (x) => {
        x.criticalEvents += 1;
      });
      await waitFor(async () => ((await state.get(id)).appliedSeq ?? 0) >= 2, { timeoutMs: 15_000, what: 'the second change seen' });
      assert.equal(incidentOf(id).version, versionBefore, 'nothing written while off');
      assert.equal(s.xsoar.lifecycle.entriesOf(incidentOf(id).investigationId).length, 0);

      await (daemon as Daemon).stop();
      daemon = new Daemon({ config: s.config({ TRACK_UPDATES: 'true' }), logger: silentLogger() });
      await daemon.start();
      await waitFor(() => s.xsoar.lifecycle.entriesOf(incidentOf(id).investigationId).length >= 1, { timeoutMs: 15_000, what: 'the held changes written' });
      await settled(s);
      const notes = s.xsoar.lifecycle.entriesOf(incidentOf(id).investigationId).map((e) => e.contents);
      assert.equal(notes.length, 1, 'one note');
      assert.match(notes[0] ?? '', /^Code42 session update: 3 new file events; severity MODERATE → CRITICAL; new rule: USB exfiltration\./);
      const inc = incidentOf(id);
      const cf = inc.CustomFields as Record<string, unknown>;
      assert.equal(inc.severity, 4);
      assert.equal(cf.code42severity, 'CRITICAL');
      assert.equal(cf.code42alertdescription, 'Cloud upload, USB exfiltration');
      assert.deepEqual(await state.heldUpdateIds(), []);
      assert.equal(s.code42.stateOf(id), 'OPEN_NEW_DATA');
      assert.equal(incidentOf(id).status, 1);
    } finally {
      redis.disconnect();
    }
  });
});
