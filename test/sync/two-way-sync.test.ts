import assert from 'node:assert/strict';
import { afterEach, describe, it } from 'node:test';
import { Daemon } from '../../src/daemon.js';
import { Ledger } from '../../src/forward/ledger.js';
import { stateKeys } from '../../src/store/keys.js';
import { SyncState, syncKeys } from '../../src/sync/sync-state.js';
import type { LifecycleModes, StoredIncident } from '../sims/xsoar/index.js';
import { silentLogger } from '../helpers/logs.js';
import { testRedis } from '../helpers/redis.js';
import { ChangeTracker, NEW_RULE, escalate, seedSessions } from '../helpers/session-changes.js';
import { stopDaemonAndStack } from '../helpers/in-process-daemon.js';
import { startStack, type Stack } from '../helpers/stack.js';
import { waitFor } from '../helpers/wait.js';

function describeModes(m: LifecycleModes): string {
  const parts = Object.entries(m).map(([k, v]) => `${k}=${String(v)}`);
  return parts.length > 0 ? parts.join(', ') : 'default readings';
}

async function metricValue(daemon: Daemon, name: string, labels = ''): Promise<number> {
  const text = await daemon.metrics.text();
  const line = text.split('\n').find((l) => l.startsWith(`code42_forwarder_${name}${labels ? `{${labels}}` : ''} `));
  return line ? Number(line.split(' ').at(-1)) : 0;
}

describe('two-way sync between sessions and incidents', () => {
  let stack: Stack | undefined;
  let daemon: Daemon | undefined;

  afterEach(async () => {
    await stopDaemonAndStack(daemon, stack);
    [daemon, stack] = [undefined, undefined];
  });

  async function forwarded(n: number, tag: string, env: Record<string, string> = {}, lifecycle = {}): Promise<{ ids: string[]; tracker: ChangeTracker; incidentOf: (id: string) => StoredIncident }> {
    // Two-way and every change applied as it comes: no longer the defaults (to-xsoar, UPDATE_INTERVAL 3m).
    stack = await startStack({ name: `sync-${tag}`, env: { STATE_SYNC_INTERVAL: '400ms', STATE_SYNC: 'both', UPDATE_INTERVAL: '0ms', ...env }, xsoar: { lifecycle } });
    const ids = seedSessions(stack.code42, n, tag);
    daemon = new Daemon({ config: stack.config(), logger: silentLogger() });
    await daemon.start();
    const xsoar = stack.xsoar;
    await waitFor(() => xsoar.incidents().length >= n, { timeoutMs: 20_000, what: `${n} incidents` });
    const sink = daemon.changeSink;
    assert.ok(sink, 'the sync is on by default');
    const tracker = new ChangeTracker(stack.code42, sink);
    for (const id of ids) tracker.track(id);
    const incidentOf = (id: string): StoredIncident => {
      const found = xsoar.incidents().filter((i) => i.dbotMirrorId === id);
      assert.equal(found.length, 1, `one incident for ${id}`);
      return found[0] as StoredIncident;
    };
    return { ids, tracker, incidentOf };
  }

  async function applied(prefix: string, ids: string[], seq: number): Promise<void> {
    const redis = testRedis();
    try {
      const state = new SyncState(redis, syncKeys(prefix));
      await waitFor(async () => (await Promise.all(ids.map((id) => state.get(id)))).every((r) => (r.appliedSeq ?? 0) >= seq), { timeoutMs: 20_000, what: `changes up to seq ${seq} applied` });
    } finally {
      redis.disconnect();
    }
  }

  for (const modes of [{}, { updateSemantics: 'merge', entryNote: 'mark-only' }] as LifecycleModes[]) {
    it(`carries new events, escalation and OPEN_NEW_DATA to each incident, one note per change, through version conflicts, leaving the analyst's fields alone (XSOAR ${describeModes(modes)})`, async () => {
      const { ids, tracker, incidentOf } = await forwarded(10, 'esc', {}, modes);
      const s = stack as Stack;
      // An analyst at work before the changes arrive: owner, phase, an own field, and a manual severity on one incident.
      for (const id of ids) s.xsoar.lifecycle.editByHand(incidentOf(id).id, { owner: 'alice', phase: 'Triage', CustomFields: { analystverdict: 'looking' } });
      s.xsoar.lifecycle.editByHand(incidentOf(ids[0] as string).id, { severity: 1 });
      s.xsoar.lifecycle.conflictNext(6);

      for (const [i, id] of ids.entries()) {
        escalate(s.code42, id, { newEvents: 3, ruleId: NEW_RULE.id, seed: 100 + i });
        assert.ok(await tracker.poll(id), 'a change record');
      }
      await applied(s.prefix, ids, 1);

      assert.equal(s.xsoar.incidents().length, 10, 'no second incident');
      for (const [i, id] of ids.entries()) {
        const inc = incidentOf(id);
        const cf = inc.CustomFields;
        assert.equal(inc.severity, i === 0 ? 1 : 4, i === 0 ? 'a manual severity stays' : 'severity raised to critical');
        assert.equal(cf.code42severity, 'CRITICAL');
        assert.equal(cf.code42alertstate, 'OPEN_NEW_DATA');
        assert.equal(cf.code42alertdescription, 'Cloud upload, USB exfiltration');
        assert.equal((cf.code42fileevents as unknown[]).length, 5, 'all five events as rows');
        const raw = JSON.parse(inc.rawJSON) as { state: string; fileevents: unknown[]; riskSeverity: string };
        assert.equal(raw.state, 'OPEN_NEW_DATA');
        assert.equal(raw.fileevents.length, 5);
        assert.equal(inc.owner, 'alice');
        assert.equal(cf.analystverdict, 'looking');
        assert.equal((s.xsoar.incidents().find((x) => x.id === inc.id) as { lifecycle?: { phase?: string } }).lifecycle?.phase, 'Triage');
        const notes = s.xsoar.lifecycle.entriesOf(inc.investigationId);
        assert.equal(notes.length, 1, `one note for ${id}`);
        assert.match(notes[0]?.contents ?? '', /^Code42 session update: 3 new file events; severity MODERATE → CRITICAL; new rule: USB exfiltration; state OPEN_NEW_DATA\./);
      }
      assert.ok(s.xsoar.lifecycle.counters.conflicts >= 6, 'version conflicts were met');
      assert.ok((await metricValue(daemon as Daemon, 'sync_version_conflicts_total')) >= 6);

      // The same record again, and a change with nothing an analyst would see: no note, no write.
      const otherVersions = (): number[] => s.xsoar.incidents().filter((x) => x.dbotMirrorId !== ids[1]).map((x) => x.version);
      const before = otherVersions();
      const again = await tracker.poll(ids[1] as string);
      assert.equal(again, null, 'nothing changed in Code42');
      s.code42.updateSession(ids[1] as string, () => undefined);
      await tracker.poll(ids[1] as string);
      await applied(s.prefix, [ids[1] as string], 2);
      assert.equal(s.xsoar.lifecycle.entriesOf(incidentOf(ids[1] as string).investigationId).length, 1, 'no note for an invisible change');
      assert.deepEqual(otherVersions(), before, 'other incidents untouched');
    });
  }

  it('logs the note instead when XSOAR refuses entries in a closed investigation (412), and still finishes the change', async () => {
    const { ids, tracker, incidentOf } = await forwarded(1, 'c412', {}, { entriesOnClosed: 'reject' });
    const s = stack as Stack;
    const id = ids[0] as string;
    s.xsoar.lifecycle.closeByHand(incidentOf(id).id, 'Other');
    s.code42.updateSession(id, (x) => {
      x.criticalEvents += 2;
    });
    await tracker.poll(id);
    await applied(s.prefix, ids, 1);
    assert.equal(s.xsoar.lifecycle.entriesOf(incidentOf(id).investigationId).length, 0);
    assert.equal(incidentOf(id).status, 2);
    assert.equal(await metricValue(daemon as Daemon, 'sync_notes_total', 'side="xsoar",outcome="refused"'), 1);
  });

  it('adds only a note to a closed incident, and reopens it only on OPEN_NEW_DATA', async () => {
    const { ids, tracker, incidentOf } = await forwarded(2, 'closed');
    const s = stack as Stack;
    const [a, b] = ids as [string, string];
    for (const id of ids) s.xsoar.lifecycle.closeByHand(incidentOf(id).id, 'Other', 'done for now');
    // a: more events and a higher severity, state unchanged → note only, stays closed.
    s.code42.updateSession(a, (x) => {
      x.criticalEvents += 1;
      x.scores.push({ score: 90, severity: 4, sourceTimestamp: Date.now() });
    });
    await tracker.poll(a);
    // b: OPEN_NEW_DATA → reopened, updated, noted.
    escalate(s.code42, b, { newEvents: 1, ruleId: NEW_RULE.id, seed: 7 });
    await tracker.poll(b);
    await applied(s.prefix, ids, 1);

    const ia = incidentOf(a);
    assert.equal(ia.status, 2, 'left closed');
    assert.equal(ia.severity, 2, 'closed incident not updated');
    const notesA = s.xsoar.lifecycle.entriesOf(ia.investigationId);
    assert.equal(notesA.length, 1);
    assert.match(notesA[0]?.contents ?? '', /1 new file event; severity MODERATE → CRITICAL\.[\s\S]*left closed/);
    const ib = incidentOf(b);
    assert.equal(ib.status, 1, 'reopened');
    assert.equal(ib.CustomFields.code42alertstate, 'OPEN_NEW_DATA');
    assert.match(s.xsoar.lifecycle.entriesOf(ib.investigationId)[0]?.contents ?? '', /state OPEN_NEW_DATA; incident reopened/);
  });

  for (const modes of [{}, { ignoreClosedDateFilter: true }] as LifecycleModes[]) {
    it(`carries closes both ways within two STATE_SYNC_INTERVALs, with notes, and nothing ping-pongs (XSOAR ${describeModes(modes)})`, async () => {
      const { ids, tracker, incidentOf } = await forwarded(20, 'close', {}, modes);
      const s = stack as Stack;
      const d = daemon as Daemon;
      const fromXsoar = ids.slice(0, 10);
      const fromIncydr = ids.slice(10);

      // XSOAR → Incydr: 5 False Positive, 5 Resolved, closed by hand.
      const runsBefore = await metricValue(d, 'sync_runs_total');
      for (const [i, id] of fromXsoar.entries()) {
        s.xsoar.lifecycle.closeByHand(incidentOf(id).id, i < 5 ? 'False Positive' : 'Resolved', `verdict ${i}: checked with the user`, 'bob');
      }
      await waitFor(() => fromXsoar.every((id) => s.code42.stateOf(id)?.startsWith('CLOSED') && s.code42.notesOf(id).length === 1), { timeoutMs: 15_000, what: 'sessions closed in Incydr' });
      const runsAfter = await metricValue(d, 'sync_runs_total');
      assert.ok(runsAfter - runsBefore <= 2, `carried across by the first or second state-sync run (took ${runsAfter - runsBefore})`);
      for (const [i, id] of fromXsoar.entries()) {
        assert.equal(s.code42.stateOf(id), i < 5 ? 'CLOSED_FP' : 'CLOSED_TP');
        const note = s.code42.notesOf(id)[0]?.content ?? '';
        assert.match(note, new RegExp(`^Closed in Cortex XSOAR \\(incident ${incidentOf(id).id}\\) as "${i < 5 ? 'False Positive' : 'Resolved'}" by bob at .*: verdict ${i}: checked with the user$`));
      }
      assert.equal(s.code42.requests.filter((r) => r.endpoint === 'sessions.changeState').length, 2, 'one batched change-state call per target state');

      // Incydr → XSOAR: 10 sessions closed in the console.
      const consoleStates = ['CLOSED_FP', 'CLOSED_TP', 'CLOSED_TP_BENIGN', 'CLOSED', 'CLOSED_FP', 'CLOSED_TP', 'CLOSED_TP_BENIGN', 'CLOSED', 'CLOSED_FP', 'CLOSED_TP'];
      const reasons: Record<string, string> = { CLOSED_FP: 'False Positive', CLOSED_TP: 'Resolved', CLOSED_TP_BENIGN: 'Resolved', CLOSED: 'Other' };
      for (const [i, id] of fromIncydr.entries()) s.code42.consoleChangeState(id, consoleStates[i] as string, 'carol@example.com');
      for (const id of fromIncydr) await tracker.poll(id);
      await applied(s.prefix, fromIncydr, 1);
      for (const [i, id] of fromIncydr.entries()) {
        const inc = incidentOf(id) as StoredIncident & { lifecycle?: { closeReason?: string; closeNotes?: string } };
        assert.equal(inc.status, 2, `incident of ${id} closed`);
        assert.equal(inc.lifecycle?.closeReason, reasons[consoleStates[i] as string]);
        assert.match(inc.lifecycle?.closeNotes ?? '', /^Closed in Code42 Incydr by carol@example\.com at \d{4}-.*\(session state CLOSED/);
        assert.match(s.xsoar.lifecycle.entriesOf(inc.investigationId)[0]?.contents ?? '', /closed in Incydr by carol@example\.com/);
      }

      // The daemon's own writes come back: the poller sees the states it set, XSOAR lists the incidents it closed.
      for (const id of fromXsoar) assert.ok(await tracker.poll(id), 'the state the daemon set, seen by the poller');
      await applied(s.prefix, fromXsoar, 1);
      const versions = new Map(s.xsoar.incidents().map((x) => [x.id, x.version]));
      const changeStates = s.code42.requests.filter((r) => r.endpoint === 'sessions.changeState').length;
      const notes = ids.map((id) => s.code42.notesOf(id).length);
      const runs = await metricValue(d, 'sync_runs_total');
      await waitFor(async () => (await metricValue(d, 'sync_runs_total')) >= runs + 3, { timeoutMs: 10_000, what: 'three more state-sync runs' });
      assert.deepEqual(new Map(s.xsoar.incidents().map((x) => [x.id, x.version])), versions, 'no incident touched again');
      assert.equal(s.code42.requests.filter((r) => r.endpoint === 'sessions.changeState').length, changeStates, 'no state set again');
      assert.deepEqual(ids.map((id) => s.code42.notesOf(id).length), notes, 'no session note again');
      for (const id of fromXsoar) assert.equal(s.xsoar.lifecycle.entriesOf(incidentOf(id).investigationId).length, 0, 'no war-room note for the daemon\'s own state');
      assert.equal(await metricValue(d, 'sync_updates_total', 'outcome="own"'), 10);

      const redis = testRedis();
      try {
        const ledger = new Ledger(redis, stateKeys(s.prefix));
        assert.equal(await ledger.incidentFor(fromXsoar[0] as string), incidentOf(fromXsoar[0] as string).id);
      } finally {
        redis.disconnect();
      }
    });
  }
});
