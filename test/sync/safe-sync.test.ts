/**
 * The two-way sync on a tenant it must not harm: the default writes nothing to Code42, a read-only API
 * client is seen (check, /readyz, metric, status), one session's refusal never stops the others, large
 * closed incidents never block the search, and an active session makes one update per UPDATE_INTERVAL.
 * Daemon in process, real Redis, both simulators; the daemon's own poller notices the changes.
 */
import assert from 'node:assert/strict';
import { afterEach, describe, it } from 'node:test';
import { Daemon } from '../../src/daemon.js';
import { checkCommand } from '../../src/cli/check.js';
import { statusCommand } from '../../src/cli/status.js';
import { SyncState, syncKeys } from '../../src/sync/sync-state.js';
import type { StoredIncident } from '../sims/xsoar/index.js';
import { makeFileEvent } from '../sims/code42/index.js';
import { mulberry32 } from '../sims/http-kit.js';
import { captureLogger, silentLogger } from '../helpers/logs.js';
import { testRedis } from '../helpers/redis.js';
import { seedSessions } from '../helpers/session-changes.js';
import { stopDaemonAndStack } from '../helpers/in-process-daemon.js';
import { startStack, type Stack } from '../helpers/stack.js';
import { waitFor } from '../helpers/wait.js';

async function metricValue(daemon: Daemon, name: string, labels = ''): Promise<number> {
  const text = await daemon.metrics.text();
  const line = text.split('\n').find((l) => l.startsWith(`code42_forwarder_${name}${labels ? `{${labels}}` : ''} `));
  return line ? Number(line.split(' ').at(-1)) : 0;
}

describe('a sync that is safe on a real tenant', () => {
  let stack: Stack | undefined;
  let daemon: Daemon | undefined;

  afterEach(async () => {
    await stopDaemonAndStack(daemon, stack);
    [daemon, stack] = [undefined, undefined];
  });

  async function forwarded(n: number, tag: string, env: Record<string, string>, logger = silentLogger()): Promise<{ s: Stack; d: Daemon; ids: string[]; incidentOf: (id: string) => StoredIncident }> {
    stack = await startStack({ name: `safe-${tag}`, env: { STATE_SYNC_INTERVAL: '400ms', ...env } });
    const s = stack;
    const ids = seedSessions(s.code42, n, tag);
    daemon = new Daemon({ config: s.config(), logger });
    await daemon.start();
    await waitFor(() => s.xsoar.incidents().length >= n, { timeoutMs: 20_000, what: `${n} incidents` });
    const incidentOf = (id: string): StoredIncident => {
      const found = s.xsoar.incidents().filter((i) => i.dbotMirrorId === id);
      assert.equal(found.length, 1, `one incident for ${id}`);
      return found[0] as StoredIncident;
    };
    return { s, d: daemon, ids, incidentOf };
  }

  const writes = (s: Stack): number => s.code42.requests.filter((r) => r.endpoint === 'sessions.changeState' || r.endpoint === 'sessions.addNote').length;

  it('writes nothing to Code42 by default, still closes incidents closed in Incydr, and says at start what it writes where', async () => {
    const logs = captureLogger('info');
    const { s, d, ids, incidentOf } = await forwarded(2, 'dflt', {}, logs.logger);
    const [a, b] = ids as [string, string];
    assert.match(logs.text(), /"msg":"sync: writes to XSOAR: incident fields and war-room notes on session changes, reopen on OPEN_NEW_DATA, close when the session is closed in Incydr; writes to Code42: nothing \(STATE_SYNC=to-xsoar/);

    s.xsoar.lifecycle.closeByHand(incidentOf(a).id, 'False Positive', 'not a leak');
    s.code42.consoleChangeState(b, 'CLOSED_TP', 'carol@example.com');
    await waitFor(() => incidentOf(b).status === 2, { timeoutMs: 15_000, what: 'the Incydr close carried to XSOAR' });
    const runs = await metricValue(d, 'sync_runs_total');
    await waitFor(async () => (await metricValue(d, 'sync_runs_total')) >= runs + 3, { timeoutMs: 10_000, what: 'three state-sync runs' });
    assert.equal(writes(s), 0, 'no change-state, no add-note');
    assert.equal(s.code42.stateOf(a), 'OPEN');
    assert.equal((await d.readiness()).checks.syncWrites?.degraded, undefined);
  });

  it('with a read-only API client and STATE_SYNC=both: check fails naming the permission, /readyz is degraded within one interval, the metric and status count the refusals', async () => {
    const { s, d, ids, incidentOf } = await forwarded(3, 'ro', { STATE_SYNC: 'both' });
    s.code42.setWriteAccess('read-only');

    const out: string[] = [];
    const code = await checkCommand(s.config(), { out: (t) => out.push(t), err: (t) => out.push(t), env: s.env });
    assert.equal(code, 1);
    const fail = out.join('').split('\n').filter((l) => l.startsWith('FAIL'));
    assert.equal(fail.length, 1, out.join(''));
    assert.match(fail[0] ?? '', /^FAIL code42 write permission: STATE_SYNC=both needs the permission to change sessions \(sessions\.changeState\), which API client key-sim-client lacks: .*HTTP 403.*set STATE_SYNC=to-xsoar/);
    const changed = s.code42.requests.filter((r) => r.endpoint === 'sessions.changeState');
    assert.ok(changed.every((r) => r.status === 403), 'the probe changed nothing');

    const runsBefore = await metricValue(d, 'sync_runs_total');
    for (const id of ids) s.xsoar.lifecycle.closeByHand(incidentOf(id).id, 'Resolved', 'done');
    await waitFor(async () => (await d.readiness()).checks.syncWrites?.degraded === true, { timeoutMs: 10_000, intervalMs: 20, what: '/readyz degraded' });
    const runsUntilDegraded = (await metricValue(d, 'sync_runs_total')) - runsBefore;
    const report = await d.readiness();
    assert.equal(report.ready, true, 'degraded, not unready');
    assert.deepEqual(report.degraded, ['syncWrites']);
    assert.match(report.checks.syncWrites?.detail ?? '', /^Code42 refused \d+ sync write\(s\) \(forbidden\)/);
    // Within one STATE_SYNC_INTERVAL: by the first run after the closes (a run already under way may miss them).
    assert.ok(runsUntilDegraded <= 2, `degraded after ${runsUntilDegraded} state-sync runs`);
    await waitFor(async () => (await metricValue(d, 'sync_refused_total', 'direction="to-code42",reason="forbidden"')) >= 2, { timeoutMs: 10_000, what: 'refusals counted' });

    const shown: string[] = [];
    assert.equal(await statusCommand(s.config(), ids[0] as string, false, { out: (t) => shown.push(t), err: () => undefined, env: s.env }), 0);
    assert.match(shown.join(''), /^refused by Code42\s+\d{4}-\S+Z\s+change-state to CLOSED_TP refused \(forbidden\)/m);
    for (const id of ids) assert.equal(s.code42.stateOf(id), 'OPEN');

    // The permission granted: the closes made meanwhile are carried, and /readyz recovers.
    s.code42.setWriteAccess('read-write');
    await waitFor(() => ids.every((id) => s.code42.stateOf(id) === 'CLOSED_TP' && s.code42.notesOf(id).length === 1), { timeoutMs: 15_000, what: 'closes carried once allowed' });
    await waitFor(async () => (await d.readiness()).checks.syncWrites?.degraded === undefined, { timeoutMs: 5_000, what: '/readyz recovered' });
  });

  it('one session refusing notes, one gone and three 5.5 MB incidents closed in the same window: every other close is carried in the next run, and nothing is repeated', async () => {
    const { s, d, ids, incidentOf } = await forwarded(8, 'brk', { STATE_SYNC: 'both' });
    const [limited, gone, ...rest] = ids as [string, string, ...string[]];
    s.code42.limitNotes(limited);
    s.code42.removeSession(gone);
    // Large incidents (file-event rows, a long rawJSON): together over XSOAR_MAX_RESPONSE_SIZE (16 MB).
    for (const id of rest.slice(0, 3)) s.xsoar.lifecycle.editByHand(incidentOf(id).id, { CustomFields: { analystattachment: 'x'.repeat(5.5 * 1024 * 1024) } });
    const runs = await metricValue(d, 'sync_runs_total');
    for (const id of ids) s.xsoar.lifecycle.closeByHand(incidentOf(id).id, 'False Positive', `checked ${id}`);
    await waitFor(() => [limited, ...rest].every((id) => s.code42.stateOf(id) === 'CLOSED_FP') && rest.every((id) => s.code42.notesOf(id).length === 1), {
      timeoutMs: 20_000,
      what: 'every close carried, with its note',
    });
    assert.ok((await metricValue(d, 'sync_runs_total')) - runs <= 2, 'by the first or second run after the closes');
    const cap = 16 * 1024 * 1024;
    const big = s.xsoar.searchAnswers.filter((a) => a.bytes > cap);
    assert.ok(big.length > 0, 'an answer went over the cap');
    assert.ok(s.xsoar.searchAnswers.some((a) => a.size < 64 && a.bytes <= cap && a.hits > 0), 'then smaller pages were asked');
    for (const id of rest) assert.equal(s.code42.notesOf(id).length, 1, `note on ${id}`);
    assert.equal(s.code42.notesOf(limited).length, 0);

    const redis = testRedis();
    try {
      const state = new SyncState(redis, syncKeys(s.prefix));
      await waitFor(async () => (await state.get(gone)).refusedToCode42What !== undefined, { timeoutMs: 5_000, what: 'the gone session recorded' });
      assert.match((await state.get(limited)).refusedToCode42What ?? '', /^add-note refused \(too_many_notes\): .*too many notes already added to this session/);
      assert.match((await state.get(gone)).refusedToCode42What ?? '', /not found/);
    } finally {
      redis.disconnect();
    }
    assert.equal(await metricValue(d, 'sync_refused_total', 'direction="to-code42",reason="too_many_notes"'), 1);
    const notesTried = s.code42.requests.filter((r) => r.endpoint === 'sessions.addNote' && r.path.includes(limited)).length;
    const after = await metricValue(d, 'sync_runs_total');
    await waitFor(async () => (await metricValue(d, 'sync_runs_total')) >= after + 3, { timeoutMs: 10_000, what: 'three more runs' });
    assert.equal(s.code42.requests.filter((r) => r.endpoint === 'sessions.addNote' && r.path.includes(limited)).length, notesTried, 'the refused note is not tried again');
  });

  it('an active session (a new event every 100 ms for 4 s) gets at most 4 s / UPDATE_INTERVAL + 1 updates and notes', async () => {
    const { s, ids, incidentOf } = await forwarded(1, 'act', { UPDATE_INTERVAL: '1s', POLL_INTERVAL: '100ms' });
    const id = ids[0] as string;
    const inc = incidentOf(id);
    const versionBefore = inc.version;
    const rnd = mulberry32(9);
    const started = Date.now();
    let added = 0;
    while (Date.now() - started < 4_000) {
      const events = [...s.code42.eventsOf(id), makeFileEvent(rnd)];
      s.code42.updateSession(id, (x) => {
        x.moderateEvents += 1;
      }, { events });
      added += 1;
      await new Promise((r) => setTimeout(r, 100));
    }
    const total = 2 + added;
    await waitFor(() => (incidentOf(id).CustomFields.code42fileevents as unknown[] | undefined)?.length === total, { timeoutMs: 10_000, what: `all ${total} events on the incident` });
    const notes = s.xsoar.lifecycle.entriesOf(inc.investigationId).length;
    const updates = incidentOf(id).version - versionBefore;
    const bound = Math.floor(4_000 / 1_000) + 1;
    assert.ok(notes <= bound, `${notes} notes for ${added} changes (bound ${bound})`);
    assert.ok(updates <= bound, `${updates} updates for ${added} changes (bound ${bound})`);
    assert.ok(notes >= 2, 'changes were carried as they came, gathered');
  });
});
