/**
 * `replay` never duplicates: it searches XSOAR before forwarding anything (also with --force), shows its
 * plan with --dry-run and asks for --yes before forwarding more than a handful.
 */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { generateTenant } from '../sims/code42/index.js';
import { runCli, startDaemon } from '../helpers/daemon-process.js';
import { withForwardQueue } from '../helpers/queue.js';
import { testRedis } from '../helpers/redis.js';
import { startStack, type Stack } from '../helpers/stack.js';
import { waitFor } from '../helpers/wait.js';
import { Ledger } from '../../src/forward/ledger.js';
import { forwardJobId, stateKeys } from '../../src/store/keys.js';

const MIN = 60_000;
const DAY = 86_400_000;

function mirrors(stack: Stack): string[] {
  return stack.xsoar.incidents().map((i) => i.dbotMirrorId ?? '');
}

async function jobsFor(stack: Stack, ids: string[]): Promise<number> {
  return withForwardQueue(stack.prefix, async (queue) => (await Promise.all(ids.map((id) => queue.getJob(forwardJobId(id))))).filter(Boolean).length);
}

async function replay(stack: Stack, args: string[]): Promise<{ code: number | null; stdout: string; stderr: string }> {
  return runCli(['replay', ...args], stack.env, 30_000);
}

describe('replay', { timeout: 180_000 }, () => {
  it('searches XSOAR before every forward, --force included; --dry-run changes nothing; more than 5 need --yes', async (t) => {
    const now = Date.now();
    const stack = await startStack({ name: 'replay', env: { POLL_INTERVAL: '1h' } });
    t.after(() => stack.close());
    stack.code42.loadTenant(generateTenant({ sessions: 10, seed: 52, beginFrom: now - 20 * MIN, beginTo: now - MIN, stateWeights: { OPEN: 1 } }));
    const daemon = startDaemon(stack.env);
    t.after(() => daemon.stop('SIGKILL'));
    await waitFor(() => stack.xsoar.incidents().length >= 10, { timeoutMs: 30_000, what: '10 incidents' });
    const recent = mirrors(stack);

    // Older sessions the first poll never asked for (they began before FIRST_FETCH reaches).
    stack.code42.loadTenant(generateTenant({ sessions: 4, seed: 53, idPrefix: 'old', beginFrom: now - 3 * DAY, beginTo: now - 2 * DAY, stateWeights: { OPEN: 1 } }));
    const old = stack.code42.sessionIds().filter((id) => id.startsWith('old'));
    assert.equal(old.length, 4);

    // --dry-run: the plan, and nothing queued.
    const dry = await replay(stack, ['--since', '4d', '--dry-run']);
    assert.equal(dry.code, 0, dry.stderr);
    for (const id of old) assert.match(dry.stdout, new RegExp(`^would forward ${id}: not in the ledger and XSOAR does not hold it$`, 'm'));
    assert.match(dry.stdout, /^dry run: 4 session\(s\) would be forwarded, 0 found in XSOAR; nothing was changed$/m);
    assert.equal(await jobsFor(stack, old), 0, 'a dry run queues nothing');

    const first = await replay(stack, ['--since', '4d']);
    assert.equal(first.code, 0, first.stderr);
    assert.match(first.stdout, /read 14, enqueued 4, .*already forwarded 10, found in XSOAR 0/);
    await waitFor(() => stack.xsoar.incidents().length >= 14, { timeoutMs: 30_000, what: '14 incidents' });
    const creates = stack.xsoar.stats().creates;

    // --force over sessions XSOAR still holds: searched, kept, nothing re-created.
    const window = ['--since', new Date(now - 3 * DAY).toISOString(), '--until', new Date(now - DAY).toISOString()];
    const kept = await replay(stack, [...window, '--force']);
    assert.equal(kept.code, 0, kept.stderr);
    assert.match(kept.stdout, /read 4, enqueued 0, .*found in XSOAR 4/);
    for (const id of old) assert.match(kept.stdout, new RegExp(`^keep ${id}: XSOAR still holds incident \\d+$`, 'm'));

    // Two incidents deleted on the XSOAR side: --force re-creates exactly those two.
    const lost = old.slice(0, 2);
    assert.equal(stack.xsoar.deleteIncidents(stack.xsoar.incidents().filter((i) => lost.includes(i.dbotMirrorId ?? '')).map((i) => i.id)), 2);
    const forced = await replay(stack, [...window, '--force']);
    assert.equal(forced.code, 0, forced.stderr);
    assert.match(forced.stdout, /read 4, enqueued 2, .*found in XSOAR 2/);
    for (const id of lost) assert.match(forced.stdout, new RegExp(`^forward ${id}: the ledger says incident \\d+, which XSOAR no longer holds$`, 'm'));
    await waitFor(() => lost.every((id) => stack.xsoar.incidentsByMirrorId(id).length === 1), { timeoutMs: 30_000, what: 'the two lost incidents re-created' });

    // The ledger lost (say, Redis lost its data): replay finds the incidents in XSOAR and records them.
    const redis = testRedis();
    t.after(() => redis.disconnect());
    const ledger = new Ledger(redis, stateKeys(stack.prefix));
    for (const id of recent) await ledger.forget(id);
    const relearn = await replay(stack, ['--since', '1h']);
    assert.equal(relearn.code, 0, relearn.stderr);
    assert.match(relearn.stdout, /read 10, enqueued 0, .*found in XSOAR 10/);
    for (const id of recent) assert.ok(await ledger.incidentFor(id), `${id} recorded again`);

    // Seven to forward: refused without --yes (nothing changed), done with it.
    stack.code42.loadTenant(generateTenant({ sessions: 7, seed: 54, idPrefix: 'older', beginFrom: now - 6 * DAY, beginTo: now - 5 * DAY, stateWeights: { OPEN: 1 } }));
    const older = stack.code42.sessionIds().filter((id) => id.startsWith('older'));
    const olderWindow = ['--since', '7d', '--until', '4d'];
    const refused = await replay(stack, olderWindow);
    assert.equal(refused.code, 1);
    assert.match(refused.stderr, /would forward 7 sessions \(more than 5\).*--yes\. Nothing was changed\./);
    assert.equal(await jobsFor(stack, older), 0, 'nothing queued without --yes');
    const confirmed = await replay(stack, [...olderWindow, '--yes']);
    assert.equal(confirmed.code, 0, confirmed.stderr);
    assert.match(confirmed.stdout, /read 7, enqueued 7/);
    await waitFor(() => older.every((id) => stack.xsoar.incidentsByMirrorId(id).length === 1), { timeoutMs: 30_000, what: 'the 7 older incidents' });

    // Exactly one incident per session throughout, and only the creates that were needed.
    const all = mirrors(stack);
    assert.equal(all.length, 21);
    assert.equal(new Set(all).size, 21);
    assert.equal(stack.xsoar.stats().creates, creates + 2 + 7);
  });
});
