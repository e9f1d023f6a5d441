/**
 * The whole loop in one daemon, with nothing driven by hand: the poller (or a sweep) re-reads a forwarded
 * session, notices that it changed, and the incident updater carries the change to the same incident.
 */
import assert from 'node:assert/strict';
import { afterEach, describe, it } from 'node:test';
import { Daemon } from '../../src/daemon.js';
import { silentLogger } from '../helpers/logs.js';
import { NEW_RULE, escalate, seedSessions } from '../helpers/session-changes.js';
import { stopDaemonAndStack } from '../helpers/in-process-daemon.js';
import { startStack, type Stack } from '../helpers/stack.js';
import { waitFor } from '../helpers/wait.js';

describe('session changes seen by the poller reach the incident', () => {
  let stack: Stack | undefined;
  let daemon: Daemon | undefined;

  afterEach(async () => {
    await stopDaemonAndStack(daemon, stack);
    [daemon, stack] = [undefined, undefined];
  });

  it('updates each incident once per change, with one note, and never creates a second one', async () => {
    stack = await startStack({ name: 'poll-sync', env: { SWEEP_INTERVAL: '2s' } });
    const s = stack;
    const ids = seedSessions(s.code42, 4, 'loop');
    daemon = new Daemon({ config: s.config(), logger: silentLogger() });
    await daemon.start();
    await waitFor(() => s.xsoar.incidents().length >= ids.length, { timeoutMs: 20_000, what: `${ids.length} incidents` });

    for (const [i, id] of ids.entries()) escalate(s.code42, id, { newEvents: 2, ruleId: NEW_RULE.id, seed: 300 + i });
    const incidentOf = (id: string) => s.xsoar.incidents().filter((x) => x.dbotMirrorId === id);
    await waitFor(
      () => ids.every((id) => incidentOf(id)[0]?.CustomFields.code42alertstate === 'OPEN_NEW_DATA' && s.xsoar.lifecycle.entriesOf(incidentOf(id)[0]?.investigationId ?? '').length === 1),
      { timeoutMs: 30_000, what: 'every incident updated by the poller-fed updater' },
    );
    // Further polls and sweeps re-read the same sessions: nothing new, so nothing more is written.
    const polls = s.code42.stats().byEndpoint['sessions.list'] ?? 0;
    await waitFor(() => (s.code42.stats().byEndpoint['sessions.list'] ?? 0) >= polls + 5, { timeoutMs: 20_000, what: 'five more listing reads' });

    assert.equal(s.xsoar.incidents().length, ids.length, 'no second incident');
    for (const id of ids) {
      const [inc] = incidentOf(id);
      assert.ok(inc);
      assert.equal(inc.severity, 4);
      assert.equal(inc.CustomFields.code42severity, 'CRITICAL');
      assert.equal((inc.CustomFields.code42fileevents as unknown[]).length, 4, 'all four events as rows');
      const notes = s.xsoar.lifecycle.entriesOf(inc.investigationId);
      assert.equal(notes.length, 1, `one note for ${id}`);
      assert.match(notes[0]?.contents ?? '', /2 new file events; severity MODERATE → CRITICAL; new rule: USB exfiltration; state OPEN_NEW_DATA/);
    }
  });
});
