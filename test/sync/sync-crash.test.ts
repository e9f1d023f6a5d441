/**
 * The built daemon, two replicas, both killed (SIGKILL) between the two writes of a change carried from one
 * side to the other, while the two sides disagree (the in-process cases of disagreements.test.ts):
 * - a close carried from XSOAR, killed between change-state (done) and add-note (reaching Code42, its answer
 *   lost): an XSOAR close met by newer data, an XSOAR close later than an Incydr close, and an analyst's
 *   re-close of an incident the daemon closed, keeping the daemon's close notes;
 * - a close carried from Incydr, killed between the XSOAR close (applied, its answer lost) and the daemon's
 *   record of it: an Incydr analyst closing again after the daemon's own change-state was followed by new
 *   data, and an Incydr close held while STATE_SYNC=off, carried once it is switched on;
 * - session changes held while TRACK_UPDATES=false, written once it is on, killed between the incident's field
 *   update (applied, its answer lost) and its war-room note.
 * After a restart both sides end in the same, newest state with one note each, and nothing more is written
 * over three further state-sync runs (no loop). The kills are forced by the simulators' write hooks, never timed.
 */
import assert from 'node:assert/strict';
import { afterEach, describe, it } from 'node:test';
import type { Redis } from 'ioredis';
import type { StoredIncident } from '../sims/xsoar/index.js';
import { SyncState, syncKeys, type SessionSyncRecord } from '../../src/sync/sync-state.js';
import { startDaemon, type DaemonProcess } from '../helpers/daemon-process.js';
import { testRedis } from '../helpers/redis.js';
import { NEW_RULE, escalate, seedSessions } from '../helpers/session-changes.js';
import { CODE42_CLIENT_ID, startStack, type Stack } from '../helpers/stack.js';
import { waitFor } from '../helpers/wait.js';

type Closed = StoredIncident & { lifecycle?: { closeReason?: string; closeNotes?: string; closed?: string } };

const ENV = { STATE_SYNC: 'both', STATE_SYNC_INTERVAL: '400ms', UPDATE_INTERVAL: '0ms', SWEEP_INTERVAL: '1s', WORKER_LOCK_DURATION: '1s', LOG_LEVEL: 'info' };

describe('two replicas killed between the two writes of a carried change', () => {
  let stack: Stack | undefined;
  let replicas: DaemonProcess[] = [];
  let redis: Redis | undefined;

  afterEach(async () => {
    for (const r of replicas) await r.stop('SIGKILL');
    replicas = [];
    redis?.disconnect();
    redis = undefined;
    await stack?.close();
    stack = undefined;
  });

  /** A stack, `n` sessions and two replicas running with `env` over the stack's; resolves once every incident exists. */
  async function forwarded(tag: string, n: number, env: Record<string, string> = {}) {
    stack = await startStack({ name: `sync-crash-${tag}`, env: ENV });
    const s = stack;
    const ids = seedSessions(s.code42, n, tag);
    replicas = [startDaemon({ ...s.env, ...env }), startDaemon({ ...s.env, ...env })];
    await waitFor(() => s.xsoar.incidents().length >= n, { timeoutMs: 20_000, what: `${n} incidents` });
    const incidentOf = (id: string): Closed => s.xsoar.incidents().find((i) => i.dbotMirrorId === id) as Closed;
    redis = testRedis();
    // The sync records, read where the kill landed and after the recovery.
    const state = new SyncState(redis, syncKeys(s.prefix));
    return { s, ids, incidentOf, state };
  }

  /** SIGKILLs both replicas (from inside a simulator hook: the write held there lands after both are dead). */
  async function killBoth(): Promise<void> {
    await Promise.all(replicas.map((r) => r.stop('SIGKILL')));
  }

  /** Starts two fresh replicas; returns them (their output is what the recovery logged). */
  function restart(env: Record<string, string>): DaemonProcess[] {
    replicas = [startDaemon(env), startDaemon(env)];
    return replicas;
  }

  /** No loop: over three more state-sync runs (each one search of XSOAR) and polls, nothing is written on either side. */
  async function settled(s: Stack): Promise<void> {
    const snapshot = (): string =>
      JSON.stringify({
        versions: s.xsoar.incidents().map((x) => [x.id, x.version, x.status]),
        warRoomEntries: s.xsoar.lifecycle.counters.notes,
        writes: s.code42.requests.filter((r) => r.endpoint === 'sessions.changeState' || r.endpoint === 'sessions.addNote').length,
      });
    await waitFor(
      async () => {
        const before = snapshot();
        const searches = s.xsoar.searchAnswers.length;
        await waitFor(() => s.xsoar.searchAnswers.length >= searches + 3, { timeoutMs: 10_000, what: 'three state-sync runs' });
        return snapshot() === before;
      },
      { timeoutMs: 30_000, intervalMs: 10, what: 'both sides settled (no loop)' },
    );
  }

  /** The state entries the daemon set on a session (change-state by its API client), oldest first. */
  function daemonStates(s: Stack, id: string): string[] {
    return (s.code42.getSession(id)?.states ?? []).filter((x) => x.userId === CODE42_CLIENT_ID).map((x) => x.state);
  }

  /** Where each side stands, appended to a timed-out wait (to read a failure). */
  function explained(s: Stack, ids: readonly string[], incidentOf: (id: string) => Closed) {
    return (err: unknown): never => {
      const sides = ids.map((id) => `${id}: ${s.code42.stateOf(id)} notes=${s.code42.notesOf(id).length} incident=${incidentOf(id).status}`).join('; ');
      throw new Error(`${(err as Error).message}: ${sides}`);
    };
  }

  it('XSOAR closes carried to Incydr (killed between change-state and add-note): newest state on both sides, one note each, no loop', async () => {
    const { s, ids, incidentOf } = await forwarded('crash', 5);
    const [a1, a2, a3, newData, later] = ids as [string, string, string, string, string];

    // The first session note reaches Code42 only after both replicas are dead: its answer is lost.
    let killed = false;
    s.code42.onWriteRequest(async (endpoint) => {
      if (endpoint !== 'sessions.addNote' || killed) return;
      killed = true;
      await killBoth();
      // While no replica runs: an XSOAR close, and 300 ms later new data in Incydr.
      s.xsoar.lifecycle.closeByHand(incidentOf(newData).id, 'False Positive', `checked ${newData}`, 'bob');
      await new Promise((r) => setTimeout(r, 300));
      escalate(s.code42, newData, { newEvents: 2, ruleId: NEW_RULE.id, seed: 5 });
    });

    s.code42.consoleChangeState(later, 'CLOSED_TP', 'carol@example.com');
    for (const id of [a1, a2, a3, later]) s.xsoar.lifecycle.closeByHand(incidentOf(id).id, 'False Positive', `checked ${id}`, 'bob');

    await waitFor(() => killed, { timeoutMs: 20_000, what: 'the kill between change-state and add-note' });
    s.code42.onWriteRequest(undefined);
    restart(s.env);

    await waitFor(
      () =>
        [a1, a2, a3, later].every((id) => s.code42.stateOf(id) === 'CLOSED_FP' && s.code42.notesOf(id).length >= 1) &&
        s.code42.stateOf(newData) === 'OPEN_NEW_DATA' &&
        incidentOf(newData).status === 1,
      { timeoutMs: 30_000, what: 'both sides in the newest state' },
    ).catch(explained(s, ids, incidentOf));
    await settled(s);

    for (const id of [a1, a2, a3]) {
      assert.equal(s.code42.notesOf(id).length, 1, `one note on ${id}`);
      assert.match(s.code42.notesOf(id)[0]?.content ?? '', /^Closed in Cortex XSOAR .* as "False Positive" by bob .*: checked crash-0\d$/);
      assert.equal(incidentOf(id).status, 2);
    }
    const output = replicas.map((r) => r.output()).join('\n');
    assert.equal(s.code42.notesOf(later).length, 1);
    assert.match(s.code42.notesOf(later)[0]?.content ?? '', /This later close replaces the state CLOSED_TP set by carol@example\.com/);
    assert.equal(incidentOf(later).lifecycle?.closeReason, 'False Positive');
    // The new data reopened the incident before the close was looked at (then there is nothing to carry), or
    // the close was looked at first (then a session note says it was not carried): either way one note.
    assert.equal(incidentOf(newData).status, 1);
    const reopenedNote = s.xsoar.lifecycle.entriesOf(incidentOf(newData).investigationId).some((e) => /incident reopened/.test(e.contents));
    const notCarriedNote = s.code42.notesOf(newData).some((n) => /Not carried: the session went to OPEN_NEW_DATA at /.test(n.content));
    assert.ok(reopenedNote || notCarriedNote, 'a note says what happened');
    assert.ok(s.code42.notesOf(newData).length <= 1);
    assert.deepEqual(daemonStates(s, newData), [], 'the close is not written over OPEN_NEW_DATA');
    assert.equal(s.xsoar.incidents().length, 5, 'no second incident');
    assert.match(output, /had reached Code42 before the interruption; not sent again/, 'the crash window was hit and recovered');
    assert.match(output, /"msg":"sync: writes to XSOAR: .*; writes to Code42: session state \(change-state\) and a session note/);
  });

  it('re-closes after the daemon\'s own writes (killed between the XSOAR close and its record, then between change-state and add-note): the newer close wins on both sides, no loop', async () => {
    const { s, ids, incidentOf, state } = await forwarded('reclose', 2);
    const [reclose, keepNotes] = ids as [string, string];
    const fail = explained(s, ids, incidentOf);
    // Set-up, nothing killed yet. reclose: an XSOAR close carried to Incydr as CLOSED_FP by the daemon, then
    // new data reopens both. keepNotes: an Incydr close carried to XSOAR, the daemon's close recorded.
    s.xsoar.lifecycle.closeByHand(incidentOf(reclose).id, 'False Positive', 'first look', 'bob');
    s.code42.consoleChangeState(keepNotes, 'CLOSED_FP', 'carol@example.com');
    await waitFor(() => s.code42.stateOf(reclose) === 'CLOSED_FP' && s.code42.notesOf(reclose).length === 1, { timeoutMs: 15_000, what: 'the XSOAR close carried to Incydr' }).catch(fail);
    escalate(s.code42, reclose, { newEvents: 1, ruleId: NEW_RULE.id, seed: 2 });
    await waitFor(() => incidentOf(reclose).status === 1, { timeoutMs: 15_000, what: 'reopened on new data' }).catch(fail);
    await waitFor(
      async () => {
        const r = await state.get(keepNotes);
        return incidentOf(keepNotes).status === 2 && r.xsoarClosedByDaemon === incidentOf(keepNotes).lifecycle?.closed && r.xsoarCloseIntentAt === undefined;
      },
      { timeoutMs: 15_000, what: 'the Incydr close carried to XSOAR and recorded' },
    ).catch(fail);
    assert.match(incidentOf(keepNotes).lifecycle?.closeNotes ?? '', /^Closed in Code42 Incydr by carol@example\.com/);
    const closesBefore = s.xsoar.lifecycle.counters.closes;

    // 1. An Incydr analyst sets CLOSED_FP again on reclose: the daemon closes the incident; XSOAR applies the
    // close and both replicas die before its answer, so before the daemon records the close as its own.
    let atKill: { record: SessionSyncRecord; incident: Closed } | undefined;
    let closeKilled = false;
    s.xsoar.onWriteRequest(async (endpoint, body) => {
      if (endpoint !== 'close' || String(body.id) !== incidentOf(reclose).id || closeKilled) return;
      closeKilled = true;
      await killBoth();
      atKill = { record: await state.get(reclose), incident: incidentOf(reclose) };
    });
    s.code42.consoleChangeState(reclose, 'CLOSED_FP', 'carol@example.com');
    await waitFor(() => atKill, { timeoutMs: 20_000, what: 'the kill between the XSOAR close and its record' }).catch(fail);
    s.xsoar.onWriteRequest(undefined);
    // The window was hit: XSOAR holds the close, the record only the intent to close.
    assert.equal(atKill?.incident.status, 2);
    assert.notEqual(atKill?.record.xsoarCloseIntentAt, undefined);
    assert.equal(atKill?.record.xsoarClosedByDaemon, undefined);
    assert.notEqual(atKill?.record.inflight, undefined, 'the change was being applied');
    const recloseClosed = atKill?.incident.lifecycle?.closed;
    restart(s.env);
    // Recovered: the interrupted change applied again, the close recognised as the daemon's own (not made twice).
    await waitFor(
      async () => {
        const r = await state.get(reclose);
        return r.inflight === undefined && r.xsoarClosedByDaemon === recloseClosed && r.xsoarCloseIntentAt === undefined;
      },
      { timeoutMs: 20_000, what: 'the interrupted close recorded as the daemon\'s own' },
    ).catch(fail);

    // 2. An analyst reopens keepNotes and closes it again keeping the daemon's close notes: carried to Incydr;
    // the session note reaches Code42 only after both replicas are dead.
    let noteKilled = false;
    s.code42.onWriteRequest(async (endpoint, path) => {
      if (endpoint !== 'sessions.addNote' || !path.includes(keepNotes) || noteKilled) return;
      noteKilled = true;
      await killBoth();
    });
    const notes = incidentOf(keepNotes).lifecycle?.closeNotes ?? '';
    s.xsoar.lifecycle.reopenByHand(incidentOf(keepNotes).id);
    await new Promise((r) => setTimeout(r, 20));
    s.xsoar.lifecycle.closeByHand(incidentOf(keepNotes).id, 'Resolved', notes, 'bob');
    await waitFor(() => noteKilled, { timeoutMs: 20_000, what: 'the kill between change-state and add-note' }).catch(fail);
    s.code42.onWriteRequest(undefined);
    assert.equal(s.code42.stateOf(keepNotes), 'CLOSED_TP', 'change-state done before the kill');
    const afterSecondKill = restart(s.env);

    await waitFor(() => s.code42.notesOf(keepNotes).length >= 1 && incidentOf(reclose).status === 2, { timeoutMs: 30_000, what: 'both sides in the newest state' }).catch(fail);
    await settled(s);

    // reclose: closed from Incydr (the daemon's earlier own-write record was cleared), once, and not carried back.
    const inc = incidentOf(reclose);
    assert.equal(inc.status, 2);
    assert.equal(inc.lifecycle?.closeReason, 'False Positive');
    assert.match(inc.lifecycle?.closeNotes ?? '', /^Closed in Code42 Incydr by carol@example\.com/);
    assert.equal(inc.lifecycle?.closed, recloseClosed, 'the close made before the kill stands');
    assert.equal(s.code42.stateOf(reclose), 'CLOSED_FP');
    assert.equal(s.code42.notesOf(reclose).length, 1, 'only the note of the first (XSOAR) close');
    assert.deepEqual(daemonStates(s, reclose), ['CLOSED_FP'], 'only the first (XSOAR) close was carried to Incydr');
    // keepNotes: the analyst's re-close reached Incydr, with one note naming what it replaced.
    assert.equal(incidentOf(keepNotes).status, 2);
    assert.equal(incidentOf(keepNotes).lifecycle?.closeReason, 'Resolved');
    assert.equal(s.code42.stateOf(keepNotes), 'CLOSED_TP');
    assert.deepEqual(daemonStates(s, keepNotes), ['CLOSED_TP'], 'the change-state made before the kill, not repeated');
    const sessionNotes = s.code42.notesOf(keepNotes);
    assert.equal(sessionNotes.length, 1);
    assert.match(sessionNotes[0]?.content ?? '', /^Closed in Cortex XSOAR .* as "Resolved" by bob .*\n\nThis later close replaces the state CLOSED_FP set by carol@example\.com at /);
    // After keepNotes' carried close, the daemon closed an incident once more only: reclose's (never repeated).
    assert.equal(s.xsoar.lifecycle.counters.closes, closesBefore + 1);
    assert.equal(s.xsoar.incidents().length, 2, 'no second incident');
    assert.match(afterSecondKill.map((r) => r.output()).join('\n'), /had reached Code42 before the interruption; not sent again/, 'the add-note window was hit and recovered');
  });

  it('closes made while STATE_SYNC=off, carried once it is on (killed between the held close\'s XSOAR close and its record): carried once each, no loop', async () => {
    const off = { STATE_SYNC: 'off' };
    const { s, ids, incidentOf, state } = await forwarded('off', 2, off);
    const [inIncydr, inXsoar] = ids as [string, string];
    const fail = explained(s, ids, incidentOf);
    s.code42.consoleChangeState(inIncydr, 'CLOSED_TP', 'carol@example.com');
    s.xsoar.lifecycle.closeByHand(incidentOf(inXsoar).id, 'False Positive', 'fine', 'bob');
    await waitFor(async () => (await state.heldSessionIds()).includes(inIncydr), { timeoutMs: 15_000, what: 'the Incydr close held' }).catch(fail);
    assert.equal(incidentOf(inIncydr).status, 1, 'not closed while off');
    assert.equal(s.code42.stateOf(inXsoar), 'OPEN', 'not carried while off');
    await Promise.all(replicas.map((r) => r.stop('SIGTERM')));

    // Switched on: the first state-sync run carries the held close first; XSOAR applies the close and both
    // replicas die before its answer, so before the daemon records it (and releases the held close).
    let atKill: { record: SessionSyncRecord; held: string[]; incident: Closed } | undefined;
    let closeKilled = false;
    s.xsoar.onWriteRequest(async (endpoint, body) => {
      if (endpoint !== 'close' || String(body.id) !== incidentOf(inIncydr).id || closeKilled) return;
      closeKilled = true;
      await killBoth();
      atKill = { record: await state.get(inIncydr), held: await state.heldSessionIds(), incident: incidentOf(inIncydr) };
    });
    const on = { ...s.env, STATE_SYNC: 'both' };
    restart(on);
    await waitFor(() => atKill, { timeoutMs: 20_000, what: 'the kill between the held close and its record' }).catch(fail);
    s.xsoar.onWriteRequest(undefined);
    // The window was hit: XSOAR holds the close, the record only the intent, the close still held.
    assert.equal(atKill?.incident.status, 2);
    assert.notEqual(atKill?.record.xsoarCloseIntentAt, undefined);
    assert.equal(atKill?.record.xsoarClosedByDaemon, undefined);
    assert.deepEqual(atKill?.held, [inIncydr]);
    assert.equal(s.code42.stateOf(inXsoar), 'OPEN', 'the XSOAR close not carried yet (the run died before it)');
    const heldClosed = atKill?.incident.lifecycle?.closed;
    const closesBefore = s.xsoar.lifecycle.counters.closes;
    const recovered = restart(on);

    await waitFor(() => s.code42.stateOf(inXsoar) === 'CLOSED_FP' && s.code42.notesOf(inXsoar).length >= 1, { timeoutMs: 20_000, what: 'the XSOAR close carried' }).catch(fail);
    await waitFor(async () => (await state.heldSessionIds()).length === 0, { timeoutMs: 10_000, what: 'the held close released' }).catch(fail);
    await settled(s);

    // The held Incydr close: closed once (the close made before the kill), recorded as the daemon's, not carried back.
    assert.equal(incidentOf(inIncydr).status, 2);
    assert.equal(incidentOf(inIncydr).lifecycle?.closed, heldClosed, 'the close made before the kill stands');
    assert.equal(incidentOf(inIncydr).lifecycle?.closeReason, 'Resolved');
    assert.match(incidentOf(inIncydr).lifecycle?.closeNotes ?? '', /^Closed in Code42 Incydr by carol@example\.com/);
    assert.equal(s.xsoar.lifecycle.counters.closes, closesBefore, 'the incident was not closed again');
    const record = await state.get(inIncydr);
    assert.equal(record.xsoarClosedByDaemon, heldClosed, 'the interrupted close recorded as the daemon\'s own');
    assert.equal(record.xsoarCloseIntentAt, undefined);
    assert.equal(s.code42.stateOf(inIncydr), 'CLOSED_TP', 'the daemon\'s close of the incident is not carried back');
    assert.equal(s.code42.notesOf(inIncydr).length, 0);
    // The XSOAR close: carried once, one note.
    assert.equal(incidentOf(inXsoar).status, 2);
    assert.equal(s.code42.notesOf(inXsoar).length, 1);
    assert.match(s.code42.notesOf(inXsoar)[0]?.content ?? '', /^Closed in Cortex XSOAR .* as "False Positive" by bob .*: fine$/);
    assert.deepEqual(daemonStates(s, inXsoar), ['CLOSED_FP']);
    assert.deepEqual(daemonStates(s, inIncydr), []);
    assert.equal(s.xsoar.incidents().length, 2, 'no second incident');
    assert.match(recovered.map((r) => r.output()).join('\n'), /the close of this held Incydr close had reached XSOAR before the interruption; recorded as the daemon's own/);
  });
  it('changes made while TRACK_UPDATES=false, written once it is on (killed between the incident update and its note): one update, one note, no loop', async () => {
    const { s, ids, incidentOf, state } = await forwarded('trackoff', 1, { TRACK_UPDATES: 'false' });
    const id = ids[0] as string;
    const fail = explained(s, ids, incidentOf);
    escalate(s.code42, id, { newEvents: 2, ruleId: NEW_RULE.id, seed: 9 });
    await waitFor(async () => (await state.heldUpdateIds()).includes(id), { timeoutMs: 15_000, what: 'the change held' }).catch(fail);
    assert.equal(s.xsoar.lifecycle.entriesOf(incidentOf(id).investigationId).length, 0, 'nothing told while off');
    await Promise.all(replicas.map((r) => r.stop('SIGTERM')));

    // Switched on: the held change goes to the incident; XSOAR applies the field update and both replicas die
    // before its answer, so before the note.
    let atKill: { record: SessionSyncRecord; notes: number; severity: number } | undefined;
    s.xsoar.onWriteRequest(async (endpoint, body) => {
      if (endpoint !== 'update' || String(body.id) !== incidentOf(id).id || atKill) return;
      await killBoth();
      atKill = { record: await state.get(id), notes: s.xsoar.lifecycle.entriesOf(incidentOf(id).investigationId).length, severity: incidentOf(id).severity as number };
    });
    const on = { ...s.env, TRACK_UPDATES: 'true' };
    restart(on);
    await waitFor(() => atKill, { timeoutMs: 20_000, what: 'the kill between the update and its note' }).catch(fail);
    s.xsoar.onWriteRequest(undefined);
    // The window was hit: the fields are in the incident, the note is not, the change is still held and in flight.
    assert.equal(atKill?.severity, 4);
    assert.equal(atKill?.notes, 0);
    assert.notEqual(atKill?.record.heldUpdate, undefined);
    assert.notEqual(atKill?.record.inflight, undefined);
    restart(on);

    await waitFor(async () => s.xsoar.lifecycle.entriesOf(incidentOf(id).investigationId).length >= 1 && (await state.heldUpdateIds()).length === 0, {
      timeoutMs: 20_000,
      what: 'the held change told and released',
    }).catch(fail);
    await settled(s);
    const notes = s.xsoar.lifecycle.entriesOf(incidentOf(id).investigationId).map((e) => e.contents);
    assert.equal(notes.length, 1, 'one note');
    assert.match(notes[0] ?? '', /^Code42 session update: 2 new file events; severity MODERATE → CRITICAL; new rule: USB exfiltration\./);
    const cf = incidentOf(id).CustomFields as Record<string, unknown>;
    assert.equal(cf.code42severity, 'CRITICAL');
    assert.equal(cf.code42alertdescription, 'Cloud upload, USB exfiltration');
    assert.equal(incidentOf(id).status, 1);
    assert.equal(s.code42.stateOf(id), 'OPEN_NEW_DATA');
    assert.deepEqual(daemonStates(s, id), []);
    assert.equal(s.xsoar.incidents().length, 1, 'no second incident');
  });
});
