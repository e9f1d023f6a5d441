/**
 * The bench scenarios. Each one starts its own redis-server, simulators and daemon(s), measures, and
 * stops everything before it returns (also when it fails).
 */
import { cpus } from 'node:os';
import { generateTenant, type GeneratedTenant, type TenantOptions } from '../sims/code42/index.js';
import type { Code42SimulatorOptions } from '../sims/code42/index.js';
import {
  MB,
  daemonEnv,
  metric,
  sleep,
  startDaemon,
  startRedis,
  startSims,
  stopRedis,
  until,
  wasInterrupted,
  type BenchDaemon,
  type BenchRedis,
  type Metrics,
  type Sims,
} from './harness.js';
import { ProcSampler, readProc } from './proc.js';
import { storedIncidents } from './xsoar-search-index.js';

// ---------------------------------------------------------------------------------------------------------------
// Figures

export interface Target {
  op: '>=' | '<=' | '==';
  value: number;
  /** How the target reads in the table, e.g. "≥ 300". */
  text: string;
}

export interface Figure {
  scenario: string;
  run: string;
  name: string;
  value: number | string;
  unit: string;
  target?: Target;
  pass?: boolean;
  /** How far off the target (1 = exactly on it; > 1 = missed by that factor); for choosing what to profile. */
  severity?: number;
  note?: string;
  /** The run to repeat under the profiler for this figure. */
  rerun?: RerunKey;
}

export type RerunKey =
  | { scenario: '1'; concurrency: number }
  | { scenario: '2'; withNames: boolean }
  | { scenario: '3' }
  | { scenario: '4' }
  | { scenario: '5'; replicas: number };

export function figure(f: Omit<Figure, 'pass' | 'severity'>): Figure {
  const out: Figure = { ...f };
  if (f.target && typeof f.value === 'number' && Number.isFinite(f.value)) {
    const v = f.value;
    const t = f.target.value;
    if (f.target.op === '>=') {
      out.pass = v >= t;
      out.severity = v > 0 ? t / v : Infinity;
    } else if (f.target.op === '<=') {
      out.pass = v <= t;
      out.severity = t > 0 ? v / t : v > 0 ? Infinity : 0;
    } else {
      out.pass = v === t;
      out.severity = v === t ? 0 : 1 + Math.abs(v - t) / Math.max(1, Math.abs(t));
    }
  } else if (f.target) {
    out.pass = false;
    out.severity = Infinity;
  }
  return out;
}

export interface ScenarioResult {
  id: string;
  title: string;
  /** How the data and the system were set up. */
  setup: Record<string, unknown>;
  runs: Array<Record<string, unknown>>;
  figures: Figure[];
  notes: string[];
  error?: string;
}

export interface BenchOptions {
  scale: number;
  /** Extra node flags for every daemon (the profiler). */
  nodeArgs?: string[];
}

export const MIN = 60_000;
const HOUR = 60 * MIN;

export function size(full: number, scale: number, min: number): number {
  return Math.max(min, Math.round(full * scale));
}

export const round = (n: number, digits = 1): number => {
  const f = 10 ** digits;
  return Math.round(n * f) / f;
};

/**
 * A tenant whose sessions all pass the daemon's default filter (open, severity low..critical) and
 * began 3–12 h ago: the first poll (FIRST_FETCH 1 d) reads them all, later polls (2 h look-back) read
 * none again, so every list call after the first poll is one empty page.
 */
export function drainTenant(sessions: number, extra: Partial<TenantOptions> = {}): GeneratedTenant {
  const now = Date.now();
  return generateTenant({
    sessions,
    seed: 7,
    stateWeights: { OPEN: 1 },
    beginFrom: now - 12 * HOUR,
    beginTo: now - 3 * HOUR,
    eventsPerSession: () => 1,
    ...extra,
  });
}

/** Daemon metrics worth keeping in the results (no histogram buckets, no Node default series). */
function keptMetrics(m: Metrics): Record<string, number> {
  const keep = /^(code42_forwarder_(incidents_total|sessions_total|upstream_requests_total|job_failures_total|polls_total|rate_limit_wait|queue_jobs|forward_duration_seconds_(sum|count)|poll_duration_seconds_(sum|count)|upstream_request_duration_seconds_(sum|count))|process_cpu_seconds_total|process_resident_memory_bytes|nodejs_heap_size_(used|total)_bytes|nodejs_external_memory_bytes|nodejs_heap_space_size_(used|total)_bytes|nodejs_eventloop_lag_(p50|p99|max)_seconds)/;
  const out: Record<string, number> = {};
  for (const [k, v] of m) if (keep.test(k)) out[k] = v;
  return out;
}

function percentile(sorted: number[], p: number): number {
  if (sorted.length === 0) return NaN;
  const i = Math.min(sorted.length - 1, Math.max(0, Math.ceil((p / 100) * sorted.length) - 1));
  return sorted[i] as number;
}

export interface IncidentStats {
  stored: number;
  distinct: number;
  duplicates: number;
  lastCreatedAt: number;
  firstCreatedAt: number;
}

export function incidentStats(sims: Sims): IncidentStats {
  const all = storedIncidents(sims.xsoar);
  const ids = new Set<string>();
  let last = 0;
  let first = Infinity;
  for (const inc of all) {
    ids.add(inc.dbotMirrorId ?? inc.request.dbotMirrorId ?? `no-mirror-id-${inc.id}`);
    const t = Date.parse(inc.created);
    if (t > last) last = t;
    if (t < first) first = t;
  }
  return { stored: all.length, distinct: ids.size, duplicates: all.length - ids.size, lastCreatedAt: last, firstCreatedAt: first };
}

/** Calls per Redis command since the server started (`INFO commandstats`), busiest first. */
async function commandStats(redis: BenchRedis): Promise<Record<string, number>> {
  const text = await redis.client.info('commandstats').catch(() => '');
  const out: Array<[string, number]> = [];
  for (const m of text.matchAll(/^cmdstat_([^:]+):calls=(\d+)/gm)) {
    if (m[1] === 'info') continue;
    out.push([m[1] as string, Number(m[2])]);
  }
  return Object.fromEntries(out.sort((a, b) => b[1] - a[1]));
}

export function firstCode42Request(sims: Sims): number {
  let first = Infinity;
  for (const r of sims.code42.requests) if (r.at < first) first = r.at;
  return first;
}

/** Throws when a daemon died while the bench waits for it. */
export function checkAlive(daemons: BenchDaemon[]): void {
  for (const d of daemons) {
    if (d.child.exitCode !== null || d.child.signalCode !== null) {
      throw new Error(`daemon ${d.label} exited (${d.child.exitCode ?? d.child.signalCode}) during the run:\n${d.logTail()}`);
    }
  }
}

/** Everything one run holds; `close` stops it all and is safe to call twice. */
export class Rig {
  redis: BenchRedis | undefined;
  sims: Sims | undefined;
  daemons: BenchDaemon[] = [];
  readonly sampler = new ProcSampler(250);
  exitCodes: Array<number | null> = [];

  async start(code42: Code42SimulatorOptions = {}): Promise<{ redis: BenchRedis; sims: Sims }> {
    this.redis = await startRedis();
    this.sims = await startSims(code42);
    this.sampler.watch('redis-server', this.redis.pid);
    this.sampler.watch('bench', 'self');
    this.sampler.start();
    return { redis: this.redis, sims: this.sims };
  }

  async daemon(label: string, env: Record<string, string>, nodeArgs: string[] = []): Promise<BenchDaemon> {
    const d = await startDaemon(label, env, nodeArgs);
    this.daemons.push(d);
    this.sampler.watch(label, d.pid);
    return d;
  }

  async close(): Promise<void> {
    this.sampler.stop();
    const daemons = this.daemons.splice(0);
    const results = await Promise.all(daemons.map((d) => d.stop()));
    this.exitCodes.push(...results.map((r) => r.code));
    const sims = this.sims;
    this.sims = undefined;
    await sims?.close();
    const redis = this.redis;
    this.redis = undefined;
    if (redis) await stopRedis(redis);
  }
}

// ---------------------------------------------------------------------------------------------------------------
// Drain runs (scenarios 1 and 5)

export interface DrainRunOptions {
  label: string;
  sessions: number;
  replicas: number;
  concurrency: number;
  nodeArgs?: string[];
  /** Progress line prefix. */
  log: (line: string) => void;
}

export async function drainRun(o: DrainRunOptions): Promise<Record<string, unknown>> {
  const rig = new Rig();
  try {
    const { redis, sims } = await rig.start();
    const tenant = drainTenant(o.sessions);
    sims.code42.loadTenant(tenant);
    const env = daemonEnv(sims, redis.url, {
      CODE42_RATE_LIMIT: '1000000/min',
      WORKER_CONCURRENCY: String(o.concurrency),
      POLL_INTERVAL: '5s',
    });
    const daemons = await Promise.all(Array.from({ length: o.replicas }, (_, i) => rig.daemon(o.replicas > 1 ? `daemon-${i + 1}` : 'daemon', env, o.nodeArgs)));
    const readyCpu = daemons.map((d) => readProc(d.pid)?.cpuMs ?? 0);
    const timeoutMs = 60_000 + o.sessions * 25;
    let timedOut = false;
    let lastLog = Date.now();
    try {
      await until(
        () => {
          checkAlive(daemons);
          const stored = sims.xsoar.stats().stored;
          if (Date.now() - lastLog > 10_000) {
            lastLog = Date.now();
            o.log(`  ${o.label}: ${stored}/${o.sessions} incidents`);
          }
          return stored >= o.sessions;
        },
        timeoutMs,
        `${o.sessions} incidents`,
        50,
      );
    } catch (err) {
      if (wasInterrupted() || !(err as Error).message.startsWith('timed out')) throw err;
      timedOut = true;
    }
    rig.sampler.sampleAll();
    const endAt = Date.now();
    const metrics = await Promise.all(daemons.map((d) => d.metrics().catch(() => new Map() as Metrics)));
    const redisCommands = await commandStats(redis);
    const inc = incidentStats(sims);
    const start = firstCode42Request(sims);
    const end = timedOut ? endAt : inc.lastCreatedAt;
    const elapsedMs = Math.max(1, end - start);
    const processes: Record<string, unknown> = {};
    for (const label of rig.sampler.labels()) {
      const cpuMs = rig.sampler.cpuBetween(label, start, end);
      processes[label] = {
        cpuMsDrain: Math.round(cpuMs),
        coresDrain: round(cpuMs / elapsedMs, 2),
        peakRssMB: round(rig.sampler.peakRss(label) / MB),
        series: rig.sampler.thinned(label),
      };
    }
    const daemonCpuDrain = daemons.reduce((s, d) => s + rig.sampler.cpuBetween(d.label, start, end), 0);
    const daemonCpuTotal = daemons.reduce((s, d) => s + (rig.sampler.series(d.label).at(-1)?.cpuMs ?? 0), 0);
    const raw: Record<string, unknown> = {
      label: o.label,
      sessions: o.sessions,
      replicas: o.replicas,
      concurrency: o.concurrency,
      timedOut,
      incidents: inc,
      firstCode42RequestAt: start,
      lastIncidentAt: inc.lastCreatedAt,
      elapsedMs,
      sessionsPerSec: round(inc.distinct / (elapsedMs / 1000)),
      daemonCpuMsDrain: Math.round(daemonCpuDrain),
      daemonCpuMsPerSession: round(daemonCpuDrain / Math.max(1, inc.distinct), 3),
      daemonCpuMsAtReady: readyCpu.map((c) => Math.round(c)),
      daemonCpuMsTotal: Math.round(daemonCpuTotal),
      daemonPeakRssMB: daemons.map((d) => round(rig.sampler.peakRss(d.label) / MB)),
      processes,
      code42: sims.code42.stats(),
      xsoar: sims.xsoar.stats(),
      redisCommands,
      redisCommandsPerSession: round(Object.values(redisCommands).reduce((a, b) => a + b, 0) / Math.max(1, inc.distinct), 2),
      daemonMetrics: metrics.map(keptMetrics),
    };
    await rig.close();
    raw.daemonExitCodes = rig.exitCodes;
    return raw;
  } finally {
    await rig.close();
  }
}

// ---------------------------------------------------------------------------------------------------------------
// 1. Unthrottled drain

export async function scenario1(opts: BenchOptions, log: (l: string) => void, only?: { concurrency: number }): Promise<ScenarioResult> {
  const sessions = size(20_000, opts.scale, 200);
  const result: ScenarioResult = {
    id: '1',
    title: 'Unthrottled drain',
    setup: {
      sessions,
      eventsPerSession: 1,
      actors: 25,
      rules: 8,
      withNames: false,
      code42RateLimit: '1000000/min (simulators: no limit, no latency)',
      pollInterval: '5s',
      logLevel: 'info',
    },
    runs: [],
    figures: [],
    notes: [],
  };
  for (const concurrency of only ? [only.concurrency] : [8, 32]) {
    const run = `concurrency ${concurrency}`;
    log(`1. unthrottled drain, ${sessions} sessions, WORKER_CONCURRENCY ${concurrency}`);
    const raw = await drainRun({ label: `s1-c${concurrency}`, sessions, replicas: 1, concurrency, log, ...(opts.nodeArgs ? { nodeArgs: opts.nodeArgs } : {}) });
    result.runs.push(raw);
    const rerun: RerunKey = { scenario: '1', concurrency };
    const incomplete = raw.timedOut ? ' (timed out: not all sessions arrived)' : '';
    result.figures.push(
      figure({ scenario: '1', run, name: 'sessions/s end to end', value: raw.sessionsPerSec as number, unit: '/s', target: { op: '>=', value: 300, text: '≥ 300' }, rerun, ...(incomplete ? { note: incomplete } : {}) }),
      figure({ scenario: '1', run, name: 'daemon CPU per session', value: raw.daemonCpuMsPerSession as number, unit: 'ms', target: { op: '<=', value: 1, text: '≤ 1' }, rerun }),
      figure({ scenario: '1', run, name: 'daemon peak RSS', value: (raw.daemonPeakRssMB as number[])[0] ?? NaN, unit: 'MB', target: { op: '<=', value: 200, text: '≤ 200' }, rerun }),
      figure({ scenario: '1', run, name: 'duplicates / missing', value: `${(raw.incidents as IncidentStats).duplicates} / ${sessions - (raw.incidents as IncidentStats).distinct}`, unit: '' }),
    );
  }
  return result;
}

// ---------------------------------------------------------------------------------------------------------------
// 2. Budget drain

export async function scenario2(opts: BenchOptions, log: (l: string) => void, only?: { withNames: boolean }): Promise<ScenarioResult> {
  const sessions = size(2_000, opts.scale, 100);
  const perMin = 1_200;
  const result: ScenarioResult = {
    id: '2',
    title: 'Budget drain',
    setup: {
      sessions,
      actors: 200,
      rules: 10,
      eventsPerSession: 1,
      simulatorRateLimit: `${perMin} requests per fixed 60 s window (oauth included)`,
      daemonCode42RateLimit: `${perMin}/min`,
      timeCompression: 'Incydr allows 120/min; both limits run at 10x (1,200/min) to compress time',
      pollInterval: '30s (default)',
      workerConcurrency: 8,
    },
    runs: [],
    figures: [],
    notes: [],
  };
  for (const withNames of only ? [only.withNames] : [true, false]) {
    const run = withNames ? 'names on sessions' : 'no names on sessions';
    log(`2. budget drain, ${sessions} sessions, ${run}`);
    const rig = new Rig();
    try {
      const { redis, sims } = await rig.start({ rateLimit: { requests: perMin, perMs: MIN } });
      const tenant = drainTenant(sessions, { actors: 200, rules: 10, withNames, seed: 11 });
      sims.code42.loadTenant(tenant);
      const actorIds = new Set(tenant.sessions.map((s) => s.session.actorId));
      const ruleIds = new Set(tenant.sessions.flatMap((s) => s.session.triggeredAlerts.map((a) => a.ruleId)));
      const pages = Math.ceil(sessions / 50);
      const minimum = 1 + pages + sessions + (withNames ? 0 : actorIds.size + ruleIds.size);
      const env = daemonEnv(sims, redis.url, { CODE42_RATE_LIMIT: `${perMin}/min`, WORKER_CONCURRENCY: '8' });
      const daemon = await rig.daemon('daemon', env, opts.nodeArgs);
      const timeoutMs = 120_000 + (minimum / (perMin / MIN)) * 2;
      let lastLog = Date.now();
      await until(
        () => {
          checkAlive([daemon]);
          const stored = sims.xsoar.stats().stored;
          if (Date.now() - lastLog > 15_000) {
            lastLog = Date.now();
            log(`  ${run}: ${stored}/${sessions} incidents, ${sims.code42.stats().total} Code42 calls`);
          }
          return stored >= sessions;
        },
        timeoutMs,
        `${sessions} incidents`,
        50,
      );
      rig.sampler.sampleAll();
      const metrics = await daemon.metrics();
      const inc = incidentStats(sims);
      const start = firstCode42Request(sims);
      const end = inc.lastCreatedAt;
      const windowMs = Math.max(1, end - start);
      const requests = sims.code42.requests;
      const callsInWindow = requests.filter((r) => r.at >= start && r.at <= end).length;
      const stats = sims.code42.stats();
      const callsPerMin = callsInWindow / (windowMs / MIN);
      const raw: Record<string, unknown> = {
        label: `s2-${withNames ? 'names' : 'no-names'}`,
        withNames,
        sessions,
        distinctActors: actorIds.size,
        distinctRules: ruleIds.size,
        minimumCalls: { total: minimum, oauth: 1, listPages: pages, events: sessions, actors: withNames ? 0 : actorIds.size, rules: withNames ? 0 : ruleIds.size },
        code42: stats,
        callsPerSession: round(stats.total / sessions, 3),
        minimumPerSession: round(minimum / sessions, 3),
        overMinimumPct: round(((stats.total - minimum) / minimum) * 100, 2),
        drainMs: windowMs,
        callsInDrain: callsInWindow,
        callsPerMin: round(callsPerMin),
        utilisationPct: round((callsPerMin / perMin) * 100),
        rateLimited: stats.rateLimited,
        rateLimitedPct: round((stats.rateLimited / Math.max(1, stats.total)) * 100, 2),
        incidents: inc,
        daemonCpuMs: Math.round(rig.sampler.cpuBetween('daemon', start, end)),
        daemonPeakRssMB: round(rig.sampler.peakRss('daemon') / MB),
        daemonMetrics: keptMetrics(metrics),
        daemonCode42Requests: metric(metrics, 'code42_forwarder_upstream_requests_total', { upstream: 'code42' }),
      };
      await rig.close();
      raw.daemonExitCodes = rig.exitCodes;
      result.runs.push(raw);
      const rerun: RerunKey = { scenario: '2', withNames };
      result.figures.push(
        figure({
          scenario: '2',
          run,
          name: `Code42 calls per session (minimum ${raw.minimumPerSession as number})`,
          value: raw.callsPerSession as number,
          unit: '',
          target: { op: '<=', value: round((minimum * 1.05) / sessions, 3), text: `≤ ${round((minimum * 1.05) / sessions, 3)} (min + 5 %)` },
          rerun,
          note: `${stats.total} calls, minimum ${minimum} = ${withNames ? '' : `${actorIds.size} actors + ${ruleIds.size} rules + `}${pages} pages + ${sessions} events + 1 oauth`,
        }),
      );
      if (withNames) {
        result.figures.push(figure({ scenario: '2', run, name: 'Code42 calls per session', value: raw.callsPerSession as number, unit: '', target: { op: '<=', value: 1.1, text: '≤ 1.1' }, rerun }));
      }
      result.figures.push(
        figure({ scenario: '2', run, name: 'budget utilisation', value: raw.utilisationPct as number, unit: '%', target: { op: '>=', value: 95, text: '≥ 95' }, rerun, note: `${raw.callsPerMin as number} calls/min of ${perMin} over ${round(windowMs / 1000)} s` }),
        figure({ scenario: '2', run, name: '429s received', value: raw.rateLimitedPct as number, unit: '% of calls', target: { op: '<=', value: 1, text: '≤ 1' }, rerun, note: `${stats.rateLimited} of ${stats.total}` }),
      );
    } finally {
      await rig.close();
    }
  }
  return result;
}

// ---------------------------------------------------------------------------------------------------------------
// 3. Latency

export async function scenario3(opts: BenchOptions, log: (l: string) => void): Promise<ScenarioResult> {
  const seconds = size(120, opts.scale, 10);
  const perSec = 10;
  const total = seconds * perSec;
  const pollMs = 1_000;
  const result: ScenarioResult = {
    id: '3',
    title: 'Latency',
    setup: {
      durationSec: seconds,
      sessionsPerSec: perSec,
      sessions: total,
      beginTime: 'now (visible at once)',
      eventsPerSession: 1,
      pollInterval: '1s',
      code42RateLimit: '1000000/min (simulators: no limit, no latency)',
      workerConcurrency: 8,
      measured: 'XSOAR simulator `created` of the incident minus the moment addSession returned',
    },
    runs: [],
    figures: [],
    notes: [],
  };
  log(`3. latency, ${perSec} new sessions/s for ${seconds} s, POLL_INTERVAL 1s`);
  const rig = new Rig();
  try {
    const { redis, sims } = await rig.start();
    const template = generateTenant({ sessions: total, seed: 13, stateWeights: { OPEN: 1 }, eventsPerSession: () => 1 });
    for (const a of template.actors) sims.code42.addActor(a);
    for (const r of template.rules) sims.code42.addRule(r);
    const env = daemonEnv(sims, redis.url, { CODE42_RATE_LIMIT: '1000000/min', POLL_INTERVAL: '1s', WORKER_CONCURRENCY: '8' });
    const daemon = await rig.daemon('daemon', env, opts.nodeArgs);
    await sleep(1_500);
    const addedAt = new Map<string, number>();
    const started = Date.now();
    let added = 0;
    let lastLogged = 0;
    while (added < total) {
      checkAlive([daemon]);
      if (wasInterrupted()) throw new Error('interrupted');
      const due = Math.min(total, Math.floor(((Date.now() - started) / 1000) * perSec) + 1);
      while (added < due) {
        const entry = template.sessions[added] as GeneratedTenant['sessions'][number];
        const now = Date.now();
        const s = sims.code42.addSession({ ...entry.session, beginTime: now, endTime: now, firstObserved: now, lastUpdated: now }, { events: entry.events });
        addedAt.set(s.sessionId, Date.now());
        added += 1;
      }
      if (Math.floor(added / 200) > Math.floor(lastLogged / 200)) log(`  ${added}/${total} added, ${sims.xsoar.stats().stored} incidents`);
      lastLogged = added;
      await sleep(20);
    }
    const addingMs = Date.now() - started;
    await until(() => (checkAlive([daemon]), sims.xsoar.stats().stored >= total), 60_000, `${total} incidents`, 50);
    rig.sampler.sampleAll();
    const metrics = await daemon.metrics();
    const latencies: number[] = [];
    let unknown = 0;
    for (const inc of storedIncidents(sims.xsoar)) {
      const at = addedAt.get(inc.dbotMirrorId ?? '');
      if (at === undefined) unknown += 1;
      else latencies.push(Date.parse(inc.created) - at);
    }
    latencies.sort((a, b) => a - b);
    const c42 = sims.code42.stats();
    const polls = metric(metrics, 'code42_forwarder_polls_total', { outcome: 'ok' });
    const raw: Record<string, unknown> = {
      label: 's3',
      sessions: total,
      addingMs,
      incidents: incidentStats(sims),
      unmatchedIncidents: unknown,
      latencyMs: {
        p50: percentile(latencies, 50),
        p90: percentile(latencies, 90),
        p99: percentile(latencies, 99),
        max: latencies[latencies.length - 1] ?? NaN,
        min: latencies[0] ?? NaN,
        mean: round(latencies.reduce((a, b) => a + b, 0) / Math.max(1, latencies.length)),
      },
      latencies,
      polls,
      listCalls: c42.byEndpoint['sessions.list'],
      listPagesPerPoll: round((c42.byEndpoint['sessions.list'] ?? 0) / Math.max(1, polls), 2),
      code42: c42,
      daemonCpuMs: Math.round(rig.sampler.cpuBetween('daemon', started, Date.now())),
      daemonCoresWhileAdding: round(rig.sampler.cpuBetween('daemon', started, started + addingMs) / addingMs, 2),
      daemonPeakRssMB: round(rig.sampler.peakRss('daemon') / MB),
      daemonSeries: rig.sampler.thinned('daemon'),
      daemonMetrics: keptMetrics(metrics),
    };
    await rig.close();
    raw.daemonExitCodes = rig.exitCodes;
    result.runs.push(raw);
    const l = raw.latencyMs as { p50: number; p99: number; max: number };
    const rerun: RerunKey = { scenario: '3' };
    result.figures.push(
      figure({ scenario: '3', run: `${perSec}/s for ${seconds} s`, name: 'latency p50', value: l.p50, unit: 'ms', rerun }),
      figure({ scenario: '3', run: `${perSec}/s for ${seconds} s`, name: 'latency p99', value: l.p99, unit: 'ms', target: { op: '<=', value: pollMs + 1_000, text: '≤ 2000 (poll interval + 1 s)' }, rerun, note: `max ${l.max} ms; ${raw.polls as number} polls, ${raw.listPagesPerPoll as number} list pages per poll` }),
    );
  } finally {
    await rig.close();
  }
  return result;
}

// ---------------------------------------------------------------------------------------------------------------
// 4. Backlog memory

export async function scenario4(opts: BenchOptions, log: (l: string) => void): Promise<ScenarioResult> {
  const sessions = size(100_000, opts.scale, 500);
  const result: ScenarioResult = {
    id: '4',
    title: 'Backlog memory',
    setup: {
      sessions,
      eventsPerSession: 0,
      includeFiles: false,
      withNames: true,
      reason: 'no Code42 call per attempt besides the list pages, so the retries during the outage stay cheap and the run short',
      workerAttempts: 50,
      workerBackoff: '200ms',
      workerConcurrency: 8,
      xsoar: 'outage (503 on every request) from before the daemon starts until every session is in the queue',
      code42RateLimit: '1000000/min (simulators: no limit, no latency)',
    },
    runs: [],
    figures: [],
    notes: [],
  };
  log(`4. backlog memory, ${sessions} sessions queued while XSOAR is down`);
  const rig = new Rig();
  try {
    const { redis, sims } = await rig.start();
    sims.code42.loadTenant(drainTenant(sessions, { eventsPerSession: () => 0, withNames: true, seed: 17 }));
    sims.xsoar.outage(24 * HOUR);
    const env = daemonEnv(sims, redis.url, {
      CODE42_RATE_LIMIT: '1000000/min',
      INCLUDE_FILES: 'false',
      WORKER_ATTEMPTS: '50',
      WORKER_BACKOFF: '200ms',
      WORKER_CONCURRENCY: '8',
    });
    const daemon = await rig.daemon('daemon', env, opts.nodeArgs);
    const started = Date.now();
    const depthOf = (m: Metrics): number => metric(m, 'code42_forwarder_queue_jobs');
    let depth = 0;
    let lastLog = Date.now();
    const timeoutMs = 120_000 + sessions * 10;
    await until(
      async () => {
        checkAlive([daemon]);
        const m = await daemon.metrics().catch(() => undefined);
        if (m) depth = depthOf(m);
        if (Date.now() - lastLog > 15_000) {
          lastLog = Date.now();
          log(`  queue depth ${depth}/${sessions}, daemon RSS ${round(rig.sampler.peakRss('daemon') / MB)} MB peak`);
        }
        return depth >= sessions;
      },
      timeoutMs,
      `${sessions} queued sessions`,
      1_000,
    );
    const enqueuedAt = Date.now();
    const atEnqueued = await daemon.metrics();
    sims.xsoar.outage(0);
    log(`  all ${sessions} queued after ${round((enqueuedAt - started) / 1000)} s; XSOAR is back`);
    lastLog = Date.now();
    await until(
      () => {
        checkAlive([daemon]);
        const stored = sims.xsoar.stats().stored;
        if (Date.now() - lastLog > 15_000) {
          lastLog = Date.now();
          log(`  ${stored}/${sessions} incidents`);
        }
        return stored >= sessions;
      },
      timeoutMs,
      `${sessions} incidents after the outage`,
      200,
    );
    // Let the last jobs complete (ledger, counters) before reading the failed count.
    await sleep(1_000);
    rig.sampler.sampleAll();
    const endAt = Date.now();
    const metrics = await daemon.metrics();
    const inc = incidentStats(sims);
    const xs = sims.xsoar.stats();
    const raw: Record<string, unknown> = {
      label: 's4',
      sessions,
      enqueueMs: enqueuedAt - started,
      drainAfterOutageMs: inc.lastCreatedAt - enqueuedAt,
      queueAtEnqueued: {
        waiting: metric(atEnqueued, 'code42_forwarder_queue_jobs', { state: 'waiting' }),
        active: metric(atEnqueued, 'code42_forwarder_queue_jobs', { state: 'active' }),
        delayed: metric(atEnqueued, 'code42_forwarder_queue_jobs', { state: 'delayed' }),
        failed: metric(atEnqueued, 'code42_forwarder_queue_jobs', { state: 'failed' }),
      },
      failedAtEnd: metric(metrics, 'code42_forwarder_queue_jobs', { state: 'failed' }),
      incidents: inc,
      xsoar: xs,
      xsoarRequestsByEndpoint: countBy(sims.xsoar.requests.map((r) => `${r.endpoint} ${r.status}`)),
      code42: sims.code42.stats(),
      daemonPeakRssMB: round(rig.sampler.peakRss('daemon') / MB),
      daemonPeakRssOutageMB: round(rig.sampler.peakRss('daemon', started, enqueuedAt) / MB),
      daemonPeakRssDrainMB: round(rig.sampler.peakRss('daemon', enqueuedAt, endAt) / MB),
      daemonCpuMsOutage: Math.round(rig.sampler.cpuBetween('daemon', started, enqueuedAt)),
      daemonCpuMsDrain: Math.round(rig.sampler.cpuBetween('daemon', enqueuedAt, endAt)),
      redisPeakRssMB: round(rig.sampler.peakRss('redis-server') / MB),
      benchPeakRssMB: round(rig.sampler.peakRss('bench') / MB),
      daemonSeries: rig.sampler.thinned('daemon'),
      redisSeries: rig.sampler.thinned('redis-server'),
      daemonMetrics: keptMetrics(metrics),
    };
    await rig.close();
    raw.daemonExitCodes = rig.exitCodes;
    result.runs.push(raw);
    const run = `${sessions} queued`;
    const rerun: RerunKey = { scenario: '4' };
    result.figures.push(
      figure({ scenario: '4', run, name: 'daemon peak RSS (whole run)', value: raw.daemonPeakRssMB as number, unit: 'MB', target: { op: '<=', value: 200, text: '≤ 200' }, rerun, note: `${raw.daemonPeakRssOutageMB as number} MB while queueing, ${raw.daemonPeakRssDrainMB as number} MB while draining` }),
      figure({ scenario: '4', run, name: 'sessions arrived (distinct dbotMirrorId)', value: inc.distinct, unit: '', target: { op: '==', value: sessions, text: `= ${sessions}` }, rerun, note: `${inc.duplicates} duplicates, ${raw.failedAtEnd as number} failed jobs` }),
      figure({ scenario: '4', run, name: 'time to queue everything', value: round((raw.enqueueMs as number) / 1000), unit: 's' }),
      figure({ scenario: '4', run, name: 'drain after the outage', value: round((raw.drainAfterOutageMs as number) / 1000), unit: 's', note: `${round(sessions / Math.max(1, (raw.drainAfterOutageMs as number) / 1000))} sessions/s` }),
    );
  } finally {
    await rig.close();
  }
  return result;
}

function countBy(values: string[]): Record<string, number> {
  const out: Record<string, number> = {};
  for (const v of values) out[v] = (out[v] ?? 0) + 1;
  return out;
}

// ---------------------------------------------------------------------------------------------------------------
// 5. Scale-out

export async function scenario5(opts: BenchOptions, log: (l: string) => void, only?: { replicas: number }): Promise<ScenarioResult> {
  const sessions = size(20_000, opts.scale, 200);
  const result: ScenarioResult = {
    id: '5',
    title: 'Scale-out',
    setup: {
      sessions,
      eventsPerSession: 1,
      replicas: only ? [only.replicas] : [1, 2, 4],
      workerConcurrencyPerReplica: 8,
      sharedRedis: 'one redis-server, same QUEUE_PREFIX',
      code42RateLimit: '1000000/min (simulators: no limit, no latency)',
      cpu: 'CPU time over the drain window per process; cores = CPU ms / wall ms',
    },
    runs: [],
    figures: [],
    notes: [],
  };
  for (const replicas of only ? [only.replicas] : [1, 2, 4]) {
    log(`5. scale-out, ${sessions} sessions, ${replicas} replica(s)`);
    const raw = await drainRun({ label: `s5-r${replicas}`, sessions, replicas, concurrency: 8, log, ...(opts.nodeArgs ? { nodeArgs: opts.nodeArgs } : {}) });
    result.runs.push(raw);
    const procs = raw.processes as Record<string, { coresDrain: number }>;
    const ranked = Object.entries(procs).sort((a, b) => b[1].coresDrain - a[1].coresDrain);
    const daemonsCores = Object.entries(procs).filter(([k]) => k.startsWith('daemon')).reduce((s, [, v]) => s + v.coresDrain, 0);
    const busiest = ranked[0];
    raw.busiest = busiest?.[0];
    raw.daemonsCoresTotal = round(daemonsCores, 2);
    const run = `${replicas} replica${replicas > 1 ? 's' : ''}`;
    result.figures.push(
      figure({ scenario: '5', run, name: 'sessions/s end to end', value: raw.sessionsPerSec as number, unit: '/s', rerun: { scenario: '5', replicas } }),
      figure({
        scenario: '5',
        run,
        name: 'busiest process (cores used)',
        value: busiest ? `${busiest[0]} ${busiest[1].coresDrain}` : 'n/a',
        unit: '',
        note: `${ranked.map(([k, v]) => `${k} ${v.coresDrain}`).join(', ')}; all daemons ${round(daemonsCores, 2)} cores; all processes ${round(ranked.reduce((a, [, v]) => a + v.coresDrain, 0), 2)} of ${cpus().length} cores`,
      }),
    );
  }
  return result;
}
