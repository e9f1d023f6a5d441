/**
 * One active session, measured at the defaults: a new file event every 5 s for 10 minutes (POLL_INTERVAL
 * 30 s, UPDATE_INTERVAL 3 min). Counts the incident updates (its version) and war-room notes XSOAR
 * received, against the bound 10 min / UPDATE_INTERVAL + 1. Real time: about 11 minutes.
 *   npx tsx test/bench/sync-noise.ts   (BENCH_NOISE_MINUTES, BENCH_NOISE_EVERY_MS to change the run)
 */
import { Daemon } from '../../src/daemon.js';
import { makeFileEvent } from '../sims/code42/index.js';
import { mulberry32 } from '../sims/http-kit.js';
import { silentLogger } from '../helpers/logs.js';
import { seedSessions } from '../helpers/session-changes.js';
import { startStack } from '../helpers/stack.js';
import { waitFor } from '../helpers/wait.js';

const minutes = Number(process.env.BENCH_NOISE_MINUTES ?? 10);
const everyMs = Number(process.env.BENCH_NOISE_EVERY_MS ?? 5_000);
const stack = await startStack({ name: 'sync-noise', env: { POLL_INTERVAL: '30s', UPDATE_INTERVAL: '3m', SWEEP_INTERVAL: '8h' } });
const [id] = seedSessions(stack.code42, 1, 'noise');
const daemon = new Daemon({ config: stack.config(), logger: silentLogger() });
try {
  await daemon.start();
  await waitFor(() => stack.xsoar.incidents().length >= 1, { timeoutMs: 120_000, what: 'the incident' });
  const incident = () => stack.xsoar.incidents().find((x) => x.dbotMirrorId === id) ?? stack.xsoar.incidents()[0];
  const before = incident()?.version ?? 0;
  const rnd = mulberry32(5);
  const started = Date.now();
  let added = 0;
  while (Date.now() - started < minutes * 60_000) {
    const events = [...stack.code42.eventsOf(id as string), makeFileEvent(rnd)];
    stack.code42.updateSession(id as string, (s) => void (s.moderateEvents += 1), { events });
    added += 1;
    await new Promise((r) => setTimeout(r, everyMs));
  }
  // The last changes arrive within one UPDATE_INTERVAL and a poll.
  const total = 2 + added;
  await waitFor(() => (incident()?.CustomFields.code42fileevents as unknown[] | undefined)?.length === total, { timeoutMs: 5 * 60_000, intervalMs: 1_000, what: `all ${total} events on the incident` });
  const updates = (incident()?.version ?? 0) - before;
  const notes = stack.xsoar.lifecycle.entriesOf(incident()?.investigationId ?? '').length;
  const bound = Math.floor(minutes / 3) + 1;
  console.log(JSON.stringify({ minutes, everyMs, changes: added, updates, notes, bound, within: updates <= bound && notes <= bound }));
} finally {
  await daemon.stop();
  await stack.close();
}
