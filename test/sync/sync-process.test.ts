import assert from 'node:assert/strict';
import { afterEach, describe, it } from 'node:test';
import { createUpdateQueue, UpdateSink } from '../../src/sync/update-queue.js';
import { SyncState, syncKeys } from '../../src/sync/sync-state.js';
import { silentLogger } from '../helpers/logs.js';
import { runCli, startDaemon, type DaemonProcess } from '../helpers/daemon-process.js';
import { testRedis } from '../helpers/redis.js';
import { ChangeTracker, escalate, seedSessions } from '../helpers/session-changes.js';
import { startStack, type Stack } from '../helpers/stack.js';
import { waitFor } from '../helpers/wait.js';

describe('incident updates in the built daemon', () => {
  let stack: Stack | undefined;
  let daemon: DaemonProcess | undefined;
  const cleanups: Array<() => Promise<void>> = [];

  afterEach(async () => {
    await daemon?.stop('SIGKILL');
    for (const c of cleanups.splice(0).reverse()) await c();
    await stack?.close();
    daemon = undefined;
    stack = undefined;
  });

  it('survives a SIGKILL between a note reaching XSOAR and its record: one note per change, no second incident; status shows each session', async () => {
    stack = await startStack({ name: 'sync-kill', env: { STATE_SYNC_INTERVAL: '500ms', STATE_SYNC: 'both', UPDATE_INTERVAL: '0ms', WORKER_LOCK_DURATION: '1s', LOG_LEVEL: 'info' } });
    const s = stack;
    const ids = seedSessions(s.code42, 10, 'kill', { severity: 3, events: 1 });
    daemon = startDaemon(s.env);
    await waitFor(() => s.xsoar.incidents().length >= 10, { timeoutMs: 20_000, what: '10 incidents' });

    // The poller's part, played here: change records into the deployment's update queue.
    const redis = testRedis();
    const queue = createUpdateQueue(redis, s.prefix, { attempts: 10, backoffMs: 100, keepCompletedMs: 60_000 });
    cleanups.push(async () => {
      await queue.close();
      redis.disconnect();
    });
    const state = new SyncState(redis, syncKeys(s.prefix));
    const tracker = new ChangeTracker(s.code42, new UpdateSink({ queue, state, logger: silentLogger() }));
    for (const id of ids) tracker.track(id);

    // Every XSOAR answer now comes 1.5 s after the work is done: a kill right after a note is stored lands
    // before the daemon hears of it. Version conflicts on the way, too.
    s.xsoar.setFaults({ latencyMs: 1_500 });
    s.xsoar.lifecycle.conflictNext(4);
    for (const [i, id] of ids.entries()) {
      escalate(s.code42, id, { newEvents: 2, ruleId: 'rule-usb', seed: 50 + i });
      await tracker.poll(id);
    }
    const notes = (): number => s.xsoar.incidents().reduce((n, inc) => n + s.xsoar.lifecycle.entriesOf(inc.investigationId).length, 0);
    await waitFor(() => notes() >= 3, { timeoutMs: 30_000, intervalMs: 10, what: 'three notes stored' });
    daemon.child.kill('SIGKILL');
    await daemon.stop('SIGKILL');
    s.xsoar.setFaults({});

    daemon = startDaemon(s.env);
    await waitFor(async () => (await Promise.all(ids.map((id) => state.get(id)))).every((r) => r.appliedSeq === 1), { timeoutMs: 30_000, what: 'every change applied' });

    assert.equal(s.xsoar.incidents().length, 10, 'no second incident');
    for (const inc of s.xsoar.incidents()) {
      const entries = s.xsoar.lifecycle.entriesOf(inc.investigationId);
      assert.equal(entries.length, 1, `exactly one note on incident ${inc.id}`);
      assert.match(entries[0]?.contents ?? '', /2 new file events; severity HIGH → CRITICAL; new rule: USB exfiltration; state OPEN_NEW_DATA/);
      assert.equal(inc.severity, 4);
      assert.equal(inc.CustomFields.code42alertstate, 'OPEN_NEW_DATA');
      assert.equal((inc.CustomFields.code42fileevents as unknown[]).length, 3);
    }
    assert.match(daemon.output(), /had reached XSOAR before the interruption; not sent again/, 'the crash window was hit and recovered');

    // status <sessionId>: incident, last sync each way, pending change.
    await daemon.stop('SIGTERM');
    const incidentId = s.xsoar.incidents().find((i) => i.dbotMirrorId === ids[0])?.id;
    s.code42.updateSession(ids[0] as string, (x) => {
      x.criticalEvents += 1;
    });
    await tracker.poll(ids[0] as string);
    const shown = await runCli(['status', ids[0] as string], s.env);
    assert.equal(shown.code, 0, shown.stderr);
    assert.match(shown.stdout, new RegExp(`^incident\\s+${incidentId}$`, 'm'));
    assert.match(shown.stdout, /^last sync → XSOAR\s+\d{4}-\d\d-\d\dT\S+Z\s+fields, note: 2 new file events; severity HIGH → CRITICAL/m);
    assert.match(shown.stdout, /^last sync → Code42\s+never$/m);
    assert.match(shown.stdout, /^pending change\s+seq 2 \(updated, events\), noticed /m);
    const asJson = JSON.parse((await runCli(['status', ids[0] as string, '--json'], s.env)).stdout) as { incidentId: string; pendingChange: { seq: number } };
    assert.equal(asJson.incidentId, incidentId);
    assert.equal(asJson.pendingChange.seq, 2);
    const unknown = await runCli(['status', 'no-such-session'], s.env);
    assert.equal(unknown.code, 1);
    assert.match(unknown.stdout, /^incident\s+none \(not forwarded\)$/m);
  });
});
