/**
 * Scenario 6, steady-state polling cost: the poller against a Code42 tenant that produces N matching
 * sessions a day, with the deep window already full, for one whole SWEEP_INTERVAL.
 *
 * Time compression: one virtual clock drives the simulators (their data, Code42's `Date` header, token
 * expiry) and a daemon; the bench runs the daemon's poller (`runOnce()`, its schedule parked), waits until
 * the daemon's workers have emptied the forward and update queues, and advances the clock by POLL_INTERVAL,
 * so hours of polling run in a minute of real time. A change's delay is virtual time until its incident is
 * in the XSOAR simulator (or closed there, for a close in the console: the state sync runs as by default);
 * every Code42 call (listing, events, actors, rules, tokens) is the simulator's own count.
 * Redis starts as a daemon that has run for DEEP_LOOKBACK leaves it: every session of the window in the
 * seen-set, the tracker and the count index, the checkpoint at the start. The Redis-wipe run forwards
 * nothing: it measures how soon the sessions queued at the flush are queued again, with a poller of its own.
 */
import { Redis } from 'ioredis';
import { Queue as BullQueue, type Queue } from 'bullmq';
import { Code42Clock } from '../../src/code42/code42-clock.js';
import { IncydrClient } from '../../src/code42/incydr-client.js';
import type { Session } from '../../src/code42/schemas.js';
import { UPDATE_QUEUE, stateKeys } from '../../src/store/keys.js';
import { Poller } from '../../src/poll/poller.js';
import { requestWindowReread } from '../../src/poll/poll-state.js';
import { createForwardQueue } from '../../src/jobs/queues.js';
import { SessionTracker } from '../../src/poll/session-tracker.js';
import { CountIndex } from '../../src/poll/count-index.js';
import { StateMarker } from '../../src/guard/state-marker.js';
import { enqueueSessions } from '../../src/poll/session-intake.js';
import { currentSeverity } from '../../src/code42/schemas.js';
import { Code42Simulator, type SessionInput } from '../sims/code42/index.js';
import { XsoarSimulator } from '../sims/xsoar/index.js';
import { Daemon } from '../../src/daemon.js';
import { loadConfig } from '../../src/config/index.js';
import { silentLogger } from '../helpers/logs.js';
import { mulberry32 } from '../sims/http-kit.js';
import { startRedis, stopRedis } from './harness.js';
import { figure, type BenchOptions, type Figure, type ScenarioResult } from './scenarios.js';

const MIN = 60_000;
const HOUR = 60 * MIN;
const DAY = 24 * HOUR;
const PAGE = 50;
const BUDGET_PER_DAY = 120 * 1440;

export interface CostParams {
  pollMs: number;
  lookbackMs: number;
  deepLookbackMs: number;
  sweepIntervalMs: number;
  /** Depth of each recent read below the previous poll (the poller's recentMarginMs). */
  marginMs: number;
}

export const DEFAULTS: CostParams = { pollMs: 30_000, lookbackMs: 2 * HOUR, deepLookbackMs: 7 * DAY, sweepIntervalMs: 8 * HOUR, marginMs: 5 * MIN };

/**
 * List calls a day for a tenant with `n` sessions a day (with alerts, all severities and states: the
 * listing is not filtered):
 *   recent reads   (DAY / I) × (⌊n (I + m) / DAY / 50⌋ + 1)
 *   recent sweeps  (DAY / (L / 8)) × ⌊n L / DAY / 50⌋            (its page 0 is the recent read's)
 *   deep sweeps    (DAY / S) × ⌊n (D + S) / DAY / 50⌋           (the same)
 */
export function predictedListCallsPerDay(n: number, p: CostParams = DEFAULTS): { recent: number; recentSweep: number; deepSweep: number; total: number } {
  const recent = (DAY / p.pollMs) * (Math.floor((n * (p.pollMs + p.marginMs)) / DAY / PAGE) + 1);
  const recentSweep = (DAY / Math.max(1_000, p.lookbackMs / 8)) * Math.floor((n * p.lookbackMs) / DAY / PAGE);
  const deepSweep = (DAY / p.sweepIntervalMs) * Math.floor((n * (p.deepLookbackMs + p.sweepIntervalMs)) / DAY / PAGE);
  return { recent, recentSweep, deepSweep, total: recent + recentSweep + deepSweep };
}

/** Today's poller: every poll reads the whole LOOKBACK window by begin time. */
export function baselineListCallsPerDay(n: number, p: CostParams = DEFAULTS): number {
  return (DAY / p.pollMs) * Math.max(1, Math.ceil((n * p.lookbackMs) / DAY / PAGE));
}

/** Largest n a day whose polling plus one events call per session (plus 96 tokens) fits 120/min. */
export function largestSustained(listPerDay: (n: number) => number): number {
  let lo = 0;
  let hi = 1_000_000;
  while (hi - lo > 100) {
    const mid = Math.floor((lo + hi) / 2);
    if (listPerDay(mid) + mid + 96 <= BUDGET_PER_DAY) lo = mid;
    else hi = mid;
  }
  return lo;
}

function percentile(sorted: number[], p: number): number {
  if (sorted.length === 0) return NaN;
  return sorted[Math.min(sorted.length - 1, Math.floor((p / 100) * sorted.length))] as number;
}

/** What is measured: new sessions, late ones, console closes, escalations without activity, a Redis wipe. */
export const CHANGE_KINDS = ['new', 'late 1 h', 'late 1 d', 'late 3 d', 'console close', 'escalation', 'Redis wiped'] as const;
export type ChangeKind = (typeof CHANGE_KINDS)[number];

/** Changes a day, as a share of N (at least MIN_PER_KIND of each in a run, so each has a delay to report). */
export const CHANGE_MIX: Record<Exclude<ChangeKind, 'new' | 'Redis wiped'>, number> = {
  'late 1 h': 0.01,
  'late 1 d': 0.005,
  'late 3 d': 0.005,
  'console close': 0.01,
  escalation: 0.005,
};
const MIN_PER_KIND = 3;

interface Delays {
  p50: number;
  p99: number;
  count: number;
  /** Changes of this kind made during the run (count is how many arrived). */
  made: number;
}

interface SteadyRun {
  n: number;
  params: CostParams;
  everyChange: boolean;
  durationMs: number;
  polls: number;
  forwarded: number;
  /** Code42 calls the simulator counted, by endpoint. */
  code42: Record<string, number>;
  code42Total: number;
  pagesByPurpose: Record<string, number>;
  delays: Record<string, Delays>;
  /** Incidents the daemon created in the XSOAR simulator (none in the Redis-wipe run). */
  incidents: number;
  /** The Redis-wipe run: list calls from the wipe on, and how long until each session queued at the flush was queued again. */
  wipe?: { sessions: number; calls: number; p50: number; p99: number; back: number };
  predicted: number;
  realMs: number;
}

/** Sessions for `n` a day: visible 1–3 min after they end; 5 % low severity (outside the bench's filter). */
function newSession(id: string, visibleAtMs: number, rnd: () => number, beginBeforeVisibleMs?: number): { input: SessionInput; visibleAt: number } {
  const visibleAt = Math.floor(visibleAtMs);
  const begin = beginBeforeVisibleMs !== undefined ? visibleAt - beginBeforeVisibleMs : visibleAt - (MIN + rnd() * 2 * MIN) - rnd() * 30 * MIN;
  const end = beginBeforeVisibleMs !== undefined ? begin + rnd() * 20 * MIN : visibleAt - (MIN + rnd() * 2 * MIN);
  const sev = rnd() < 0.05 ? 1 : 2 + Math.floor(rnd() * 3);
  return {
    input: { sessionId: id, beginTime: Math.floor(begin), endTime: Math.floor(Math.max(begin, end)), firstObserved: visibleAt, lastUpdated: visibleAt, scores: [{ score: sev * 10, severity: sev, sourceTimestamp: visibleAt }], triggeredAlerts: [{ alertId: `a-${id}`, ruleId: 'r-1', lessonId: null }] },
    visibleAt,
  };
}

const SEVERITIES = ['critical', 'high', 'moderate'] as const;

async function steadyRun(n: number, params: CostParams, opts: { everyChange: boolean; durationMs: number; wipe: boolean }, log: (l: string) => void): Promise<SteadyRun> {
  const started = Date.now();
  const T0 = Date.UTC(2026, 10, 20, 0, 0, 0);
  let now = T0;
  const clock = (): number => now;
  const rnd = mulberry32(n + (opts.everyChange ? 1 : 0));
  const sim = new Code42Simulator({ clock, endTimeMoves: true, endTimeMovesOnEveryChange: opts.everyChange });
  const redisProc = await startRedis();
  const conns: Redis[] = [];
  const conn = (): Redis => {
    const c = new Redis(redisProc.url, { maxRetriesPerRequest: null, protocol: 2 });
    conns.push(c);
    return c;
  };
  let queue: Queue | undefined;
  let stopDaemon: () => Promise<void> = async () => undefined;
  let closeUpdates: () => Promise<void> = async () => undefined;
  try {
    await sim.start();
    // History: the window the listing covers, already read by a daemon that has run for DEEP_LOOKBACK.
    const windowMs = params.deepLookbackMs + params.sweepIntervalMs;
    const history = Math.round((n * windowMs) / DAY);
    const histSessions: Session[] = [];
    for (let i = 0; i < history; i++) {
      const visibleAt = T0 - windowMs + (i / history) * windowMs;
      const s = newSession(`h-${i}`, visibleAt, rnd);
      if (s.input.beginTime !== undefined && s.input.beginTime < T0 - windowMs) continue;
      histSessions.push(sim.addSession(s.input) as unknown as Session);
    }
    const redis = conn();
    const keys = stateKeys('bench6');
    const forwardedHist = histSessions.filter((s) => currentSeverity(s) >= 2);
    for (let i = 0; i < forwardedHist.length; i += 5_000) {
      const chunk = forwardedHist.slice(i, i + 5_000);
      await redis.zadd(keys.seen, ...chunk.flatMap((s) => [s.beginTime, s.sessionId]));
    }
    await new SessionTracker({ redis, keys }).track(forwardedHist);
    const counts = new CountIndex(redis, keys);
    for (let i = 0; i < histSessions.length; i += 5_000) {
      await counts.record(histSessions.slice(i, i + 5_000).map((s) => ({ sessionId: s.sessionId, beginTime: s.beginTime, out: false, sev: currentSeverity(s) >= 2 })));
    }
    await redis.set(keys.checkpoint, String(T0 - params.pollMs));
    await redis.set(keys.marker, JSON.stringify({ since: T0 - 30 * DAY }));
    const listingFrom = T0 - params.deepLookbackMs - params.sweepIntervalMs;
    await redis.hset(keys.sweep, {
      origin: String(T0 - 30 * DAY),
      listingFrom: String(listingFrom),
      listingAt: String(T0),
      importing: '0',
      countsArmed: '1',
      countsLive: '1',
      'tier:recent': JSON.stringify({ start: T0, page: 0, done: false, lastPages: Math.ceil((n * params.lookbackMs) / DAY / PAGE), from: listingFrom, before: T0 }),
      'tier:deep': JSON.stringify({ start: T0, page: 0, done: false, lastPages: Math.ceil(history / PAGE), from: listingFrom, before: T0 }),
    });
    if (opts.wipe) {
      // A backlog: 40 forwarded sessions that ended 3 h to 3 days ago (spread evenly) still queued when Redis loses its data.
      const pool = forwardedHist.filter((s) => (s.endTime ?? 0) < T0 - 3 * HOUR && (s.endTime ?? 0) > T0 - 3 * DAY);
      const old = Array.from({ length: 40 }, (_, i) => pool[Math.floor((i * pool.length) / 40)] as Session);
      const backlog = createForwardQueue(conn(), 'bench6', { attempts: 1, backoffMs: 1_000, keepCompletedMs: DAY });
      await enqueueSessions(backlog, old, T0 - HOUR);
      await backlog.close();
    }
    log(`  n=${n}/day, ${opts.everyChange ? 'end time moves with every change' : 'end time moves with new activity only'}${opts.wipe ? ', Redis wiped' : ''}: ${histSessions.length} sessions in the window, seeded`);

    // Forwarding: a daemon on the same clock whose own poll schedule never comes due (the bench polls). Not in
    // the wipe run: after a loss the whole window is queued again and each session searched in XSOAR before
    // any create, a drain of hours that is not what this run measures (how soon the lost jobs are queued
    // again). The state sync runs as by default (Incydr closes to XSOAR, changes tracked).
    const xsoar = new XsoarSimulator({ apiKey: 'bench-xsoar-key' });
    await xsoar.start();
    const startDaemon = async (): Promise<Daemon> => {
      await redis.hset(keys.pollSchedule, { due: String(Number.MAX_SAFE_INTEGER), created: String(Date.now()) });
      const config = loadConfig({
        env: {
          CODE42_API_URL: sim.url,
          CODE42_CLIENT_ID: 'key-sim-client',
          CODE42_CLIENT_SECRET: 'sim-client-secret',
          CODE42_RATE_LIMIT: '60000/min',
          XSOAR_URL: xsoar.url,
          XSOAR_API_KEY: 'bench-xsoar-key',
          XSOAR_SEARCH_SETTLE: '100ms',
          REDIS_URL: redisProc.url,
          QUEUE_PREFIX: 'bench6',
          POLL_INTERVAL: `${params.pollMs}ms`,
          LOOKBACK: `${params.lookbackMs}ms`,
          DEEP_LOOKBACK: `${params.deepLookbackMs}ms`,
          SWEEP_INTERVAL: `${params.sweepIntervalMs}ms`,
          FIRST_FETCH: '1d',
          ALERT_SEVERITIES: SEVERITIES.join(','),
          ALERT_STATES: 'OPEN,OPEN_NEW_DATA',
          WORKER_CONCURRENCY: '8',
          LOG_LEVEL: 'warn',
        },
      });
      const d = new Daemon({ config, logger: silentLogger(), clock });
      await d.start();
      return d;
    };
    const daemon = opts.wipe ? undefined : await startDaemon();
    stopDaemon = async () => {
      await daemon?.stop();
      await xsoar.close();
    };
    const inXsoarAt = new Map<string, number>();
    const closedInXsoarAt = new Map<string, number>();
    const noteIncidents = (skip: Set<string>): void => {
      for (const inc of xsoar.incidents()) {
        const id = inc.CustomFields.code42alertid;
        if (typeof id !== 'string') continue;
        if (!skip.has(id) && !inXsoarAt.has(id)) inXsoarAt.set(id, now);
        if (inc.status === 2 && !closedInXsoarAt.has(id)) closedInXsoarAt.set(id, now);
      }
    };

    const code42Clock = new Code42Clock({ local: clock });
    const client = new IncydrClient({ apiUrl: sim.url, clientId: 'key-sim-client', clientSecret: 'sim-client-secret', timeoutMs: 30_000, clock, serverClock: code42Clock });
    queue = createForwardQueue(conn(), 'bench6', { attempts: 1, backoffMs: 1_000, keepCompletedMs: DAY });
    const updates = new BullQueue(UPDATE_QUEUE, { connection: conn(), prefix: 'bench6' });
    const queues = [queue, updates];
    closeUpdates = () => updates.close();
    // The daemon's own poller (its client, token and settings); the wipe run (no daemon before the flush) has its own.
    const poller =
      daemon?.poller ??
      new Poller({
        client,
        redis,
        queue,
        keys,
        severities: [...SEVERITIES],
        states: ['OPEN', 'OPEN_NEW_DATA'],
        firstFetchMs: DAY,
        lookbackMs: params.lookbackMs,
        logger: silentLogger(),
        clock,
        code42Clock,
        deepLookbackMs: params.deepLookbackMs,
        sweepIntervalMs: params.sweepIntervalMs,
        pollIntervalMs: params.pollMs,
        recentMarginMs: params.marginMs,
        maxSweepPagesPerPoll: 30,
        // The bench's client has no request budget: the re-read is held to Incydr's 120 requests a minute
        // (60 a poll), the pace the daemon's budget gives it (forwarding, not run here, would share it).
        maxRushPagesPerPoll: (BUDGET_PER_DAY / DAY) * params.pollMs,
      });
    const marker = new StateMarker({ redis, keys, logger: silentLogger(), checkIntervalMs: params.pollMs, doubtTtlMs: DAY, clock, requestReread: (since) => requestWindowReread(redis, keys, since) });

    // Changes: when each was made (or became visible) and what arrival means for it.
    const madeAt = new Map<string, { at: number; kind: ChangeKind }>();
    const end = T0 + opts.durationMs;
    const perRun = (share: number): number => Math.max(MIN_PER_KIND, Math.round((n * share * opts.durationMs) / DAY));
    const schedule: Array<{ at: number; run: () => void }> = [];
    // Changes are made during the first 80 % of the run, so each has time to arrive.
    const when = (): number => T0 + Math.floor(rnd() * 0.8 * opts.durationMs);
    if (!opts.wipe) {
      const lateKinds: Array<[ChangeKind, number]> = [['late 1 h', HOUR], ['late 1 d', DAY], ['late 3 d', 3 * DAY]];
      for (const [kind, lag] of lateKinds) {
        // Beyond DEEP_LOOKBACK a late session is not forwarded, by design.
        if (lag > params.deepLookbackMs) continue;
        for (let i = 0; i < perRun(CHANGE_MIX[kind as keyof typeof CHANGE_MIX]); i++) {
          const at = when();
          const s = newSession(`${kind.replace(/\W+/g, '')}-${i}`, at, rnd, lag + rnd() * 10 * MIN);
          s.input.scores = [{ score: 30, severity: 3, sourceTimestamp: at }];
          sim.addSession(s.input, { visibleAt: at });
          madeAt.set(s.input.sessionId as string, { at, kind });
        }
      }
      // Closes: forwarded sessions that ended 3 h to DEEP_LOOKBACK ago; escalations: low ones raised to high.
      const closable = forwardedHist.filter((s) => (s.endTime ?? 0) < T0 - 3 * HOUR);
      const low = histSessions.filter((s) => currentSeverity(s) === 1 && (s.endTime ?? 0) < T0 - 3 * HOUR);
      for (let i = 0; i < perRun(CHANGE_MIX['console close']); i++) {
        const s = closable[Math.floor(rnd() * closable.length)] as Session;
        if (madeAt.has(s.sessionId)) continue;
        const at = when();
        madeAt.set(s.sessionId, { at, kind: 'console close' });
        schedule.push({ at, run: () => sim.consoleChangeState(s.sessionId, 'CLOSED_TP') });
      }
      for (let i = 0; i < perRun(CHANGE_MIX.escalation); i++) {
        const s = low[Math.floor(rnd() * low.length)] as Session;
        if (!s || madeAt.has(s.sessionId)) continue;
        const at = when();
        madeAt.set(s.sessionId, { at, kind: 'escalation' });
        schedule.push({ at, run: () => sim.escalate(s.sessionId, 3) });
      }
    }
    schedule.sort((a, b) => a.at - b.at);
    // The sessions to be closed were forwarded before the run (their incidents are what a close reaches);
    // they count neither as forwarded in the run nor in its calls.
    const toClose = [...madeAt].filter(([, m]) => m.kind === 'console close').map(([id]) => histSessions.find((h) => h.sessionId === id) as Session);
    if (daemon && toClose.length > 0) {
      await enqueueSessions(queue, toClose, T0);
      await drained(queues);
    }
    const before = new Set(xsoar.incidents().map((inc) => String(inc.CustomFields.code42alertid)));

    const visibleAt = new Map<string, number>();
    let owed = 0;
    let added = 0;
    let polls = 0;
    const pagesByPurpose: Record<string, number> = { recent: 0, count_probe: 0, count_read: 0 };
    const wipeAt = T0 + 10 * MIN;
    let wiped: { ids: string[]; calls: number } | undefined;
    sim.resetStats();
    while (now < end) {
      owed += (n * params.pollMs) / DAY;
      while (owed >= 1) {
        owed -= 1;
        const at = Math.floor(now - rnd() * params.pollMs);
        const s = newSession(`n-${added++}`, at, rnd);
        sim.addSession(s.input, { visibleAt: Math.ceil(at) });
        // Delays are measured for the sessions in the filter (the 5 % low ones are not forwarded).
        if ((s.input.scores?.[0]?.severity ?? 0) >= 2) visibleAt.set(s.input.sessionId as string, at);
      }
      while (schedule.length > 0 && (schedule[0] as { at: number }).at <= now) (schedule.shift() as { run: () => void }).run();
      if (opts.wipe && !wiped && now >= wipeAt) {
        // Everything queued is lost with the rest; the state marker notices it within one check.
        const ids = (await queue.getJobs(['waiting'])).map((j) => String((j.data as { sessionId: string }).sessionId));
        await redis.flushall();
        await marker.check('running');
        wiped = { ids, calls: sim.stats().byEndpoint['sessions.list'] ?? 0 };
      }
      const r = await poller.runOnce();
      if (!r) throw new Error('poll skipped');
      polls += 1;
      if (daemon) {
        await drained(queues);
        noteIncidents(before);
      }
      pagesByPurpose.recent = (pagesByPurpose.recent ?? 0) + r.recentPages;
      pagesByPurpose.count_probe = (pagesByPurpose.count_probe ?? 0) + r.countProbes;
      pagesByPurpose.count_read = (pagesByPurpose.count_read ?? 0) + r.countPages;
      for (const [tier, k] of Object.entries(r.sweepPages)) pagesByPurpose[`sweep_${tier}`] = (pagesByPurpose[`sweep_${tier}`] ?? 0) + k;
      now += params.pollMs;
    }
    const jobs = await queue.getJobs(['waiting', 'prioritized', 'delayed', 'active', 'completed', 'failed']);
    // When each session arrived: its incident in XSOAR (the wipe run: queued again).
    const polledAt = daemon ? inXsoarAt : new Map(jobs.map((j) => [String((j.data as { sessionId: string }).sessionId), (j.data as { polledAt: number }).polledAt]));
    const arrivals: Record<string, number[]> = {};
    const made: Record<string, number> = {};
    for (const [id, at] of visibleAt) {
      const p = polledAt.get(id);
      made.new = (made.new ?? 0) + 1;
      if (p !== undefined) (arrivals.new ??= []).push((p - at) / 1000);
    }
    for (const [id, m] of madeAt) {
      made[m.kind] = (made[m.kind] ?? 0) + 1;
      let arrived: number | undefined;
      if (m.kind === 'console close') arrived = closedInXsoarAt.get(id);
      else arrived = polledAt.get(id);
      if (arrived !== undefined) (arrivals[m.kind] ??= []).push((arrived - m.at) / 1000);
    }
    const delays: Record<string, Delays> = {};
    for (const kind of Object.keys(made)) {
      const list = (arrivals[kind] ?? []).sort((a, b) => a - b);
      delays[kind] = { p50: percentile(list, 50), p99: percentile(list, 99), count: list.length, made: made[kind] ?? 0 };
    }
    const stats = sim.stats();
    let wipe: SteadyRun['wipe'];
    if (wiped) {
      const back = wiped.ids.map((id) => polledAt.get(id)).filter((p): p is number => p !== undefined && p >= wipeAt).map((p) => (p - wipeAt) / 1000).sort((a, b) => a - b);
      wipe = { sessions: wiped.ids.length, calls: (stats.byEndpoint['sessions.list'] ?? 0) - wiped.calls, p50: percentile(back, 50), p99: percentile(back, 99), back: back.length };
    }
    const days = opts.durationMs / DAY;
    return {
      n,
      params,
      everyChange: opts.everyChange,
      durationMs: opts.durationMs,
      polls,
      forwarded: daemon ? inXsoarAt.size : jobs.length,
      incidents: inXsoarAt.size,
      code42: stats.byEndpoint,
      code42Total: stats.total,
      pagesByPurpose,
      delays,
      ...(wipe ? { wipe } : {}),
      predicted: predictedListCallsPerDay(n, params).total * days,
      realMs: Date.now() - started,
    };
  } finally {
    await stopDaemon();
    await closeUpdates();
    await queue?.close();
    for (const c of conns) c.disconnect();
    await sim.close();
    await stopRedis(redisProc);
  }
}

/** Code42 calls per forwarded session: with forwarding run, all of them over the incidents; else the listing's plus one events call each. */
function callsPerForwarded(r: SteadyRun): number {
  return r.incidents > 0 ? r.code42Total / r.incidents : r.code42Total / Math.max(1, r.forwarded) + 1;
}

/** Resolves once the queues hold no job to run (the daemon's workers took them all); 2 min at most. */
async function drained(queues: readonly Queue[]): Promise<void> {
  const deadline = Date.now() + 120_000;
  for (;;) {
    const counts = await Promise.all(queues.map((q) => q.getJobCounts('waiting', 'active', 'prioritized', 'delayed')));
    if (counts.every((c) => Object.values(c).every((n) => n === 0))) return;
    if (Date.now() > deadline) throw new Error(`the queues did not drain: ${JSON.stringify(counts)}`);
    await new Promise((r) => setTimeout(r, 5));
  }
}

/** Today's totals (the README's figures for the poller before count detection), per forwarded session, files on. */
const TODAY_TOTAL: Record<number, number> = { 100: 31.3, 10_000: 1.91, 50_000: 1.8 };

function fmtDelay(d: Delays | undefined): string {
  if (!d || d.made === 0) return '–';
  if (d.count === 0) return `none of ${d.made}`;
  const f = (x: number): string => (x < 120 ? `${Math.round(x)} s` : `${(x / 60).toFixed(1)} min`);
  return `${f(d.p50)} / ${f(d.p99)}${d.count < d.made ? ` (${d.count} of ${d.made})` : ''}`;
}

export async function scenario6(_opts: BenchOptions, log: (l: string) => void): Promise<ScenarioResult> {
  const runs: SteadyRun[] = [];
  // 50,000 a day with a 7-day window is 380,000 sessions in the simulator (about 1 GB): it runs with a
  // 1-day window. Runs are as long as it takes for each kind of change to happen a few times.
  const plan: Array<[number, CostParams, number]> = [
    [100, DEFAULTS, 24 * HOUR],
    [10_000, DEFAULTS, 4 * HOUR],
    [50_000, { ...DEFAULTS, deepLookbackMs: DAY }, 2 * HOUR],
  ];
  const only = (process.env.BENCH_STEADY_N ?? '').split(',').map(Number).filter((x) => x > 0);
  for (const [n, params, durationMs] of plan) {
    if (only.length > 0 && !only.includes(n)) continue;
    for (const everyChange of [false, true]) {
      log(`scenario 6: ${n} sessions/day, DEEP_LOOKBACK ${params.deepLookbackMs / DAY} d, ${durationMs / HOUR} h, end time ${everyChange ? 'moves with every change' : 'moves with new activity only'}`);
      const r = await steadyRun(n, params, { everyChange, durationMs, wipe: false }, log);
      log(`  ${r.polls} polls, ${r.forwarded} forwarded, ${r.code42Total} Code42 calls (${JSON.stringify(r.pagesByPurpose)}), ${Math.round(r.realMs / 1000)} s`);
      runs.push(r);
    }
    log(`scenario 6: ${n} sessions/day, Redis wiped 10 min in`);
    const w = await steadyRun(n, params, { everyChange: false, durationMs: 30 * MIN, wipe: true }, log);
    log(`  wipe: ${JSON.stringify(w.wipe)}, ${Math.round(w.realMs / 1000)} s`);
    runs.push(w);
  }
  const figures: Figure[] = [];
  const table: string[] = [];
  for (const r of runs) {
    const run = `${r.n.toLocaleString('en-US')}/day${r.params.deepLookbackMs !== DEFAULTS.deepLookbackMs ? ` (${r.params.deepLookbackMs / DAY} d window)` : ''}, ${r.wipe ? 'Redis wiped' : r.everyChange ? 'end time moves with every change' : 'end time moves with activity only'}`;
    if (r.wipe) {
      figures.push(figure({ scenario: '6', run, name: 'Redis wiped: sessions queued at the flush queued again, p50 / p99', value: `${Math.round(r.wipe.p50)} s / ${Math.round(r.wipe.p99)} s`, unit: '', note: `${r.wipe.back} of ${r.wipe.sessions} back in the queue; ${r.wipe.calls} list calls from the wipe to the end of the run (the re-read of the whole window and the recent reads)` }));
      continue;
    }
    const perForwarded = callsPerForwarded(r);
    const today = TODAY_TOTAL[r.n];
    const target = r.n === 10_000 ? { op: '<=' as const, value: 1.4, text: '≤ 1.4' } : r.n === 100 && today ? { op: '<=' as const, value: today, text: `≤ today (${today})` } : undefined;
    figures.push(
      figure({
        scenario: '6',
        run,
        name: 'Code42 calls per forwarded session (files on)',
        value: Math.round(perForwarded * 100) / 100,
        unit: '',
        ...(target && r.params.deepLookbackMs === DEFAULTS.deepLookbackMs ? { target } : {}),
        note: `simulator's counters: ${JSON.stringify(r.code42)}; pages by purpose ${JSON.stringify(r.pagesByPurpose)}; ${r.forwarded} forwarded in ${r.polls} polls; today ${today ?? '?'}`,
      }),
    );
    for (const kind of CHANGE_KINDS) {
      if (kind === 'Redis wiped') continue;
      const d = r.delays[kind];
      figures.push(figure({ scenario: '6', run, name: `${kind} → XSOAR, p50 / p99`, value: fmtDelay(d), unit: '', ...(d && d.count > 0 ? { note: `${d.count} of ${d.made}` } : {}) }));
    }
  }
  // The README table: one row per N and reading.
  for (const r of runs) {
    if (r.wipe) continue;
    const w = runs.find((x) => x.n === r.n && x.wipe)?.wipe;
    const cells = CHANGE_KINDS.map((k) => {
      if (k === 'Redis wiped') return w ? `${Math.round(w.p50)} s / ${Math.round(w.p99)} s` : '–';
      return !r.delays[k] && k.startsWith('late') ? 'beyond the window' : fmtDelay(r.delays[k]);
    });
    table.push(`| ${r.n.toLocaleString('en-US')} | ${r.everyChange ? 'every change' : 'activity only'} | ${cells.join(' | ')} | ${callsPerForwarded(r).toFixed(2)} |`);
  }
  const maxN = largestSustained((n) => predictedListCallsPerDay(n).total);
  figures.push(figure({ scenario: '6', run: 'formula', name: 'largest N/day inside 120/min, files on (sweeps at their documented cadence)', value: maxN, unit: 'sessions/day' }));
  return {
    id: '6',
    title: 'Polling: changes to XSOAR and Code42 cost (virtual clock)',
    setup: { defaults: DEFAULTS, mix: CHANGE_MIX, severities: SEVERITIES, onTime: 'visible 1–3 min after they end, 5 % low severity (outside the filter)' },
    runs: runs.map((r) => ({ ...r })),
    figures,
    notes: [
      'Forwarding and the state sync run (a daemon on the same clock; the bench waits for its queues to empty after each poll): delays are virtual time until the incident is in the XSOAR simulator, or closed there (console close: the sessions closed were forwarded before the run); Redis wiped: until queued again. Code42 calls are every call the simulator counted (listing, events, actors, rules, tokens) divided by the incidents created in the run.',
      ['| N/day | end time moves with | ' + CHANGE_KINDS.join(' | ') + ' | Code42 calls per forwarded session |', '|---:|---|' + CHANGE_KINDS.map(() => '---|').join('') + '---:|', ...table].join('\n'),
    ],
  };
}
