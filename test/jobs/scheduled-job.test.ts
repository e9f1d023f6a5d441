/**
 * The scheduled-job kind every periodic run uses (poll, state sync): one run per deployment, takeover of a
 * dead holder within one lease, re-created by itself when Redis lost it, immune to a host clock ahead.
 */
import assert from 'node:assert/strict';
import { after, describe, it } from 'node:test';
import { ScheduledJob, type ScheduledRun } from '../../src/jobs/scheduled-job.js';
import { silentLogger } from '../helpers/logs.js';
import { deletePrefix, testRedis, uniquePrefix } from '../helpers/redis.js';
import { waitFor } from '../helpers/wait.js';

const redis = testRedis();
after(() => redis.disconnect());

function job(prefix: string, opts: { everyMs: number; leaseMs?: number; firstDelayMs?: number; run: (r: ScheduledRun) => Promise<unknown> }): ScheduledJob {
  return new ScheduledJob({
    name: 'test run',
    redis,
    scheduleKey: `${prefix}:schedule`,
    leaseKey: `${prefix}:lease`,
    everyMs: opts.everyMs,
    leaseMs: opts.leaseMs ?? 600,
    ...(opts.firstDelayMs !== undefined ? { firstDelayMs: opts.firstDelayMs } : {}),
    run: opts.run,
    logger: silentLogger(),
  });
}

describe('scheduled jobs', () => {
  it('runs once per interval across replicas, never two at a time', async () => {
    const prefix = uniquePrefix('sched-once');
    let running = 0;
    let overlap = 0;
    const starts: number[] = [];
    const run = async (): Promise<void> => {
      running += 1;
      if (running > 1) overlap += 1;
      starts.push(Date.now());
      await new Promise((r) => setTimeout(r, 50));
      running -= 1;
    };
    const replicas = [job(prefix, { everyMs: 300, run }), job(prefix, { everyMs: 300, run }), job(prefix, { everyMs: 300, run })];
    for (const r of replicas) r.start();
    await waitFor(() => starts.length >= 6, { timeoutMs: 10_000, what: 'six runs' });
    await Promise.all(replicas.map((r) => r.stop()));
    assert.equal(overlap, 0, 'never two runs at once');
    // Start to start: one interval (a tick of slack), never two runs in one interval.
    const gaps = starts.slice(1).map((t, i) => t - (starts[i] as number));
    assert.ok(Math.min(...gaps) >= 250, `runs at least an interval apart (gaps ${gaps.join(', ')} ms)`);
    await deletePrefix(redis, prefix);
  });

  it('takes over the run of a dead holder within one lease, and repeats it', async () => {
    const prefix = uniquePrefix('sched-takeover');
    // A holder that died mid-run: its lease (never renewed again) and a due run.
    await redis.hset(`${prefix}:schedule`, 'due', '0', 'started', String(Date.now()));
    await redis.set(`${prefix}:lease`, 'dead-holder', 'PX', 800);
    const began = Date.now();
    let ranAt = 0;
    const survivor = job(prefix, { everyMs: 60_000, leaseMs: 800, run: async () => void (ranAt = Date.now()) });
    survivor.start();
    await waitFor(() => ranAt > 0, { timeoutMs: 5_000, what: 'the takeover' });
    await survivor.stop();
    assert.ok(ranAt - began >= 700, 'not before the dead holder lease ran out');
    assert.ok(ranAt - began <= 800 + 1_000, `within one lease and a tick (${ranAt - began} ms)`);
    await deletePrefix(redis, prefix);
  });

  it('a run whose lease was lost is aborted and is told so before it writes', async () => {
    const prefix = uniquePrefix('sched-lost');
    let held: boolean | undefined;
    let aborted = false;
    const r = job(prefix, {
      everyMs: 60_000,
      leaseMs: 300,
      run: async (run) => {
        await redis.del(`${prefix}:lease`); // Redis lost it (a flush), or another replica took over
        await waitFor(() => run.signal.aborted, { timeoutMs: 2_000, what: 'the abort' });
        aborted = run.signal.aborted;
        held = await run.stillHeld();
      },
    });
    r.start();
    await waitFor(() => held !== undefined, { timeoutMs: 5_000, what: 'the run' });
    await r.stop();
    assert.equal(aborted, true);
    assert.equal(held, false);
    await deletePrefix(redis, prefix);
  });

  it('re-creates itself when Redis lost the schedule, and waits its first delay', async () => {
    const prefix = uniquePrefix('sched-lost-data');
    const runs: number[] = [];
    const r = job(prefix, { everyMs: 60_000, firstDelayMs: 400, run: async () => void runs.push(Date.now()) });
    const started = Date.now();
    r.start();
    await waitFor(() => runs.length >= 1, { timeoutMs: 5_000, what: 'the first run' });
    assert.ok((runs[0] as number) - started >= 350, 'the first run waits its delay');
    // Redis loses everything: the next run is due one first delay later, not one interval (60 s) later.
    await deletePrefix(redis, prefix);
    const flushed = Date.now();
    await waitFor(() => runs.length >= 2, { timeoutMs: 5_000, what: 'a run after the loss' });
    assert.ok((runs[1] as number) - flushed <= 400 + 1_500, 'back within its first delay');
    // ensure() makes it due at once.
    await deletePrefix(redis, prefix);
    assert.equal(await r.ensure(), true);
    await waitFor(() => runs.length >= 3, { timeoutMs: 2_000, what: 'a run right after ensure()' });
    await r.stop();
    await deletePrefix(redis, prefix);
  });

  it('is scheduled on Redis time: a replica whose clock runs far ahead moves nothing', async () => {
    const prefix = uniquePrefix('sched-clock');
    const runs: number[] = [];
    const ahead = new ScheduledJob({
      name: 'clock ahead',
      redis,
      scheduleKey: `${prefix}:schedule`,
      leaseKey: `${prefix}:lease`,
      everyMs: 300,
      leaseMs: 600,
      run: async () => void runs.push(Date.now()),
      logger: silentLogger(),
      clock: () => Date.now() + 3_600_000,
    });
    ahead.start();
    await waitFor(() => runs.length >= 3, { timeoutMs: 5_000, what: 'three runs on Redis time' });
    await ahead.stop();
    const due = Number(await redis.hget(`${prefix}:schedule`, 'due'));
    const [sec] = await redis.time();
    assert.ok(due - Number(sec) * 1000 < 5_000, 'the next run is due within seconds on the Redis clock');
    await deletePrefix(redis, prefix);
  });
});
