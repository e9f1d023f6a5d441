/**
 * `npm run bench:sync`: the extra Code42 calls the two-way sync costs per forwarded session, counted at the
 * Code42 simulator while a daemon (in process, real Redis) handles:
 *   A. every session gaining file events, escalating, a new rule and OPEN_NEW_DATA (one change record each)
 *   B. half of the incidents closed in XSOAR (False Positive / Resolved), carried to Incydr
 *   C. the other half closed in the Incydr console, carried to XSOAR
 * Each phase runs twice: rule names looked up (older tenants) and rule names on the session (newer tenants).
 * Change detection itself is the poller's cost (it re-reads sessions it already lists) and is not counted here.
 *
 * Environment: BENCH_SYNC_SESSIONS (default 200).
 */
import { Daemon } from '../../src/daemon.js';
import { SyncState, syncKeys } from '../../src/sync/sync-state.js';
import { silentLogger } from '../helpers/logs.js';
import { testRedis } from '../helpers/redis.js';
import { ChangeTracker, NEW_RULE, escalate, seedSessions } from '../helpers/session-changes.js';
import { startStack } from '../helpers/stack.js';
import { waitFor } from '../helpers/wait.js';

const N = Number(process.env.BENCH_SYNC_SESSIONS ?? 200);

async function run(withRuleNames: boolean): Promise<Record<string, number>> {
  const stack = await startStack({ name: 'bench-sync', env: { STATE_SYNC_INTERVAL: '500ms', STATE_SYNC: 'both', UPDATE_INTERVAL: '0ms', POLL_INTERVAL: '200ms', WORKER_CONCURRENCY: '8' } });
  const redis = testRedis();
  const daemon = new Daemon({ config: stack.config(), logger: silentLogger() });
  try {
    const ids = seedSessions(stack.code42, N, 'bench');
    await daemon.start();
    await waitFor(() => stack.xsoar.incidents().length >= N, { timeoutMs: 120_000, what: 'incidents' });
    const sink = daemon.changeSink;
    if (!sink) throw new Error('sync is off');
    const tracker = new ChangeTracker(stack.code42, sink);
    for (const id of ids) tracker.track(id);
    const state = new SyncState(redis, syncKeys(stack.prefix));
    const code42Calls = (): number => stack.code42.requests.filter((r) => r.endpoint !== 'oauth' && r.endpoint !== 'sessions.list').length;
    const applied = (list: string[], seq: number) =>
      waitFor(async () => (await Promise.all(list.map((id) => state.get(id)))).every((r) => (r.appliedSeq ?? 0) >= seq), { timeoutMs: 120_000, intervalMs: 100, what: 'applied' });

    // A. updates
    let before = code42Calls();
    for (const [i, id] of ids.entries()) {
      escalate(stack.code42, id, { newEvents: 3, ruleId: NEW_RULE.id, seed: i });
      if (withRuleNames) {
        stack.code42.updateSession(id, (s) => {
          for (const a of s.triggeredAlerts) a.ruleName = a.ruleId === NEW_RULE.id ? NEW_RULE.name : 'Cloud upload';
        });
      }
      await tracker.poll(id);
    }
    await applied(ids, 1);
    const updateCalls = code42Calls() - before;

    // B. closed in XSOAR
    const half = Math.floor(N / 2);
    const fromXsoar = ids.slice(0, half);
    before = code42Calls();
    for (const [i, id] of fromXsoar.entries()) {
      const inc = stack.xsoar.incidents().find((x) => x.dbotMirrorId === id);
      if (inc) stack.xsoar.lifecycle.closeByHand(inc.id, i % 2 === 0 ? 'False Positive' : 'Resolved', 'checked');
    }
    await waitFor(() => fromXsoar.every((id) => stack.code42.notesOf(id).length === 1), { timeoutMs: 120_000, intervalMs: 100, what: 'closes carried to Incydr' });
    const xsoarCloseCalls = code42Calls() - before;

    // C. closed in the Incydr console
    const fromIncydr = ids.slice(half);
    before = code42Calls();
    for (const id of fromIncydr) stack.code42.consoleChangeState(id, 'CLOSED_TP');
    for (const id of fromIncydr) await tracker.poll(id);
    await applied(fromIncydr, 2);
    const incydrCloseCalls = code42Calls() - before;

    return {
      sessions: N,
      'update: Code42 calls per session': updateCalls / N,
      'XSOAR close → Incydr: Code42 calls per session': xsoarCloseCalls / fromXsoar.length,
      'Incydr close → XSOAR: Code42 calls per session': incydrCloseCalls / fromIncydr.length,
    };
  } finally {
    await daemon.stop();
    redis.disconnect();
    await stack.close();
  }
}

const results: Array<[string, Record<string, number>]> = [];
for (const withRuleNames of [false, true]) results.push([withRuleNames ? 'rule names on the session' : 'rule names looked up', await run(withRuleNames)]);
const keys = Object.keys(results[0]?.[1] ?? {});
process.stdout.write(`| figure | ${results.map(([k]) => k).join(' | ')} |\n|---|${results.map(() => '---:').join('|')}|\n`);
for (const k of keys) process.stdout.write(`| ${k} | ${results.map(([, r]) => String(Math.round((r[k] ?? 0) * 1000) / 1000)).join(' | ')} |\n`);
