/**
 * The built daemon, two replicas, killed (SIGKILL, both) between the two Code42 writes of a close carried
 * from XSOAR (change-state done, add-note reaching Code42 unanswered), while the two sides disagree: an
 * XSOAR close met by newer data, and an XSOAR close later than an Incydr close. After a restart both sides
 * end in the same, newest state with one note each, and nothing more is written (no loop).
 */
import assert from 'node:assert/strict';
import { afterEach, describe, it } from 'node:test';
import type { StoredIncident } from '../sims/xsoar/index.js';
import { startDaemon, type DaemonProcess } from '../helpers/daemon-process.js';
import { NEW_RULE, escalate, seedSessions } from '../helpers/session-changes.js';
import { startStack, type Stack } from '../helpers/stack.js';
import { waitFor } from '../helpers/wait.js';

type Closed = StoredIncident & { lifecycle?: { closeReason?: string } };

describe('two replicas killed between the two writes of a close', () => {
  let stack: Stack | undefined;
  let replicas: DaemonProcess[] = [];

  afterEach(async () => {
    for (const r of replicas) await r.stop('SIGKILL');
    replicas = [];
    await stack?.close();
    stack = undefined;
  });

  it('ends with both sides in the newest state, one note each, and no loop', async () => {
    stack = await startStack({
      name: 'sync-crash',
      env: { STATE_SYNC: 'both', STATE_SYNC_INTERVAL: '400ms', UPDATE_INTERVAL: '0ms', SWEEP_INTERVAL: '1s', WORKER_LOCK_DURATION: '1s', LOG_LEVEL: 'info' },
    });
    const s = stack;
    const ids = seedSessions(s.code42, 5, 'crash');
    const [a1, a2, a3, newData, later] = ids as [string, string, string, string, string];
    replicas = [startDaemon(s.env), startDaemon(s.env)];
    await waitFor(() => s.xsoar.incidents().length >= 5, { timeoutMs: 20_000, what: '5 incidents' });
    const incidentOf = (id: string): Closed => s.xsoar.incidents().find((i) => i.dbotMirrorId === id) as Closed;

    // The first session note reaches Code42 only after both replicas are dead: its answer is lost.
    let killed = false;
    s.code42.onWriteRequest(async (endpoint) => {
      if (endpoint !== 'sessions.addNote' || killed) return;
      killed = true;
      await Promise.all(replicas.map((r) => r.stop('SIGKILL')));
      // While no replica runs: an XSOAR close, and 300 ms later new data in Incydr.
      s.xsoar.lifecycle.closeByHand(incidentOf(newData).id, 'False Positive', `checked ${newData}`, 'bob');
      await new Promise((r) => setTimeout(r, 300));
      escalate(s.code42, newData, { newEvents: 2, ruleId: NEW_RULE.id, seed: 5 });
    });

    s.code42.consoleChangeState(later, 'CLOSED_TP', 'carol@example.com');
    for (const id of [a1, a2, a3, later]) s.xsoar.lifecycle.closeByHand(incidentOf(id).id, 'False Positive', `checked ${id}`, 'bob');

    await waitFor(() => killed, { timeoutMs: 20_000, what: 'the kill between change-state and add-note' });
    s.code42.onWriteRequest(undefined);
    replicas = [startDaemon(s.env), startDaemon(s.env)];

    await waitFor(
      () =>
        [a1, a2, a3, later].every((id) => s.code42.stateOf(id) === 'CLOSED_FP' && s.code42.notesOf(id).length >= 1) &&
        s.code42.stateOf(newData) === 'OPEN_NEW_DATA' &&
        incidentOf(newData).status === 1,
      { timeoutMs: 30_000, what: 'both sides in the newest state' },
    ).catch((err: unknown) => {
      // Where each side stands, to read a failure.
      const sides = ids.map((id) => `${id}: ${s.code42.stateOf(id)} notes=${s.code42.notesOf(id).length} incident=${incidentOf(id).status}`).join('; ');
      throw new Error(`${(err as Error).message}: ${sides}`);
    });
    // No loop: over three more state-sync runs (each one search of XSOAR) and polls, nothing is written.
    const snapshot = (): string =>
      JSON.stringify({
        versions: s.xsoar.incidents().map((x) => [x.id, x.version, x.status]),
        writes: s.code42.requests.filter((r) => r.endpoint === 'sessions.changeState' || r.endpoint === 'sessions.addNote').length,
      });
    await waitFor(
      async () => {
        const before = snapshot();
        const searches = s.xsoar.searchAnswers.length;
        await waitFor(() => s.xsoar.searchAnswers.length >= searches + 3, { timeoutMs: 10_000, what: 'three state-sync runs' });
        return snapshot() === before;
      },
      { timeoutMs: 30_000, intervalMs: 10, what: 'settled' },
    );

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
    assert.ok(!s.code42.requests.some((r) => r.endpoint === 'sessions.changeState' && r.path.includes(newData)));
    assert.equal(s.xsoar.incidents().length, 5, 'no second incident');
    assert.match(output, /had reached Code42 before the interruption; not sent again/, 'the crash window was hit and recovered');
    assert.match(output, /"msg":"sync: writes to XSOAR: .*; writes to Code42: session state \(change-state\) and a session note/);
  });
});
