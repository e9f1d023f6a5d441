/**
 * Scenarios 7 and 8: sessions with very many file events (memory of the streamed events read), and the drain on
 * an XSOAR that answers creates without the incident id (the ids are looked up apart from the forward jobs).
 */
import { Ledger } from '../../src/forward/ledger.js';
import { stateKeys } from '../../src/store/keys.js';
import { makeFileEvent } from '../sims/code42/index.js';
import { mulberry32 } from '../sims/http-kit.js';
import { MB, daemonEnv, metric, until, type BenchDaemon } from './harness.js';
import {
  MIN,
  Rig,
  checkAlive,
  drainTenant,
  figure,
  firstCode42Request,
  incidentStats,
  round,
  size,
  type BenchOptions,
  type ScenarioResult,
} from './scenarios.js';

// ---------------------------------------------------------------------------------------------------------------
// 7. Sessions with many file events

interface RawIncident {
  fileevents_total?: number;
  fileevents_shown?: number;
}

export async function scenario7(opts: BenchOptions, log: (l: string) => void): Promise<ScenarioResult> {
  const hugeEvents = 100_000;
  const largeEvents = 12_000;
  const large = 8;
  const result: ScenarioResult = {
    id: '7',
    title: 'Sessions with many file events',
    setup: {
      sessions: `1 of ${hugeEvents.toLocaleString('en-US')} events and ${large} of ${largeEvents.toLocaleString('en-US')}, all in parallel (WORKER_CONCURRENCY ${large + 1})`,
      eventSize: 'about 1.7 KB of JSON each (generated events, cycled); the answers are about 170 MB and 20 MB',
      limits: 'MAX_FILE_EVENTS 1000 (default), XSOAR_MAX_BODY default, CODE42_MAX_RESPONSE_SIZE 16MB (default)',
      simulator: 'the Code42 simulator writes each events answer as it generates it (64 KB pieces, backpressure)',
      rss: 'VmRSS of the daemon process from /proc, every 250 ms',
    },
    runs: [],
    figures: [],
    notes: [],
  };
  log(`7. one session of ${hugeEvents} file events and ${large} of ${largeEvents}, in parallel`);
  const rig = new Rig();
  try {
    const { redis, sims } = await rig.start();
    const tenant = drainTenant(large + 1, { withNames: true, seed: 17 });
    sims.code42.loadTenant(tenant);
    const rnd = mulberry32(5);
    const samples = Array.from({ length: 7 }, () => makeFileEvent(rnd));
    const ids = tenant.sessions.map((s) => s.session.sessionId);
    const expectedTotal = new Map<string, number>();
    ids.forEach((id, i) => {
      const count = i === 0 ? hugeEvents : largeEvents;
      sims.code42.serveManyEvents(id, count, samples);
      expectedTotal.set(id, count);
    });
    const env = daemonEnv(sims, redis.url, { CODE42_RATE_LIMIT: '1000000/min', WORKER_CONCURRENCY: String(large + 1), POLL_INTERVAL: '5s' });
    const daemon = await rig.daemon('daemon', env, opts.nodeArgs);
    const started = Date.now();
    await until(
      () => {
        checkAlive([daemon]);
        return sims.xsoar.stats().stored >= ids.length;
      },
      5 * MIN,
      `${ids.length} incidents`,
      100,
    );
    rig.sampler.sampleAll();
    const elapsedMs = Date.now() - started;
    const inc = incidientsOf(sims.xsoar.incidents());
    const wrong: string[] = [];
    for (const id of ids) {
      const raw = inc.get(id);
      if (!raw) wrong.push(`${id}: missing`);
      // The default MAX_FILE_EVENTS (1,000 rows) fits the default XSOAR_MAX_BODY with these events.
      else if (raw.fileevents_total !== expectedTotal.get(id) || raw.fileevents_shown !== 1_000) {
        wrong.push(`${id}: ${raw.fileevents_shown} shown of ${raw.fileevents_total}`);
      }
    }
    const stats = incidentStats(sims);
    const metrics = await daemon.metrics();
    const failed = metric(metrics, 'code42_forwarder_job_failures_total', { final: 'true' });
    const peakRssMB = round(rig.sampler.peakRss('daemon') / MB);
    const raw: Record<string, unknown> = {
      label: 's7',
      sessions: ids.length,
      elapsedMs,
      incidents: stats,
      shown: Object.fromEntries([...inc].map(([id, r]) => [id, `${r.fileevents_shown} of ${r.fileevents_total}`])),
      wrong,
      finalFailures: failed,
      daemonPeakRssMB: peakRssMB,
      benchPeakRssMB: round(rig.sampler.peakRss('bench') / MB),
      rssSeries: rig.sampler.thinned('daemon'),
      code42: sims.code42.stats(),
    };
    await rig.close();
    raw.daemonExitCodes = rig.exitCodes;
    result.runs.push(raw);
    result.figures.push(
      figure({ scenario: '7', run: `1×${hugeEvents / 1000}k + ${large}×${largeEvents / 1000}k events`, name: 'daemon peak RSS', value: peakRssMB, unit: 'MB', target: { op: '<=', value: 200, text: '≤ 200' } }),
      figure({
        scenario: '7',
        run: `1×${hugeEvents / 1000}k + ${large}×${largeEvents / 1000}k events`,
        name: 'forwarded once, MAX_FILE_EVENTS rows, the true total',
        value: ids.length - wrong.length - stats.duplicates,
        unit: `of ${ids.length}`,
        target: { op: '==', value: ids.length, text: `= ${ids.length}` },
        note: `${stats.duplicates} duplicates; ${round(elapsedMs / 1000)} s${wrong.length ? `; wrong: ${wrong.join(', ')}` : ''}`,
      }),
    );
  } finally {
    await rig.close();
  }
  return result;
}

function incidientsOf(incidents: ReadonlyArray<{ CustomFields: Record<string, unknown>; rawJSON: string }>): Map<string, RawIncident> {
  const out = new Map<string, RawIncident>();
  for (const i of incidents) out.set(String(i.CustomFields.code42alertid), JSON.parse(i.rawJSON) as RawIncident);
  return out;
}

// ---------------------------------------------------------------------------------------------------------------
// 8. Drain on an XSOAR that answers creates without the id

export async function scenario8(opts: BenchOptions, log: (l: string) => void): Promise<ScenarioResult> {
  const sessions = size(2_000, opts.scale, 200);
  const perMin = 1_200;
  const indexLagMs = 3_000;
  const searchLatencyMs = Number(process.env.BENCH_SEARCH_LATENCY_MS ?? 500);
  const result: ScenarioResult = {
    id: '8',
    title: 'Drain with creates answered without an id',
    setup: {
      sessions,
      xsoar: `creates answered without the id ('noId'), ${indexLagMs} ms index lag, dbotMirrorId not kept, each search answered after ${searchLatencyMs} ms (BENCH_SEARCH_LATENCY_MS)`,
      simulatorRateLimit: `${perMin} requests per fixed 60 s window (oauth included)`,
      daemonCode42RateLimit: `${perMin}/min`,
      timeCompression: 'Incydr allows 120/min (2 sessions/s with files); both limits run at 10x to compress time; the index lag is not compressed',
      withNames: true,
      workerConcurrency: 8,
      searchSettle: '10s (default)',
    },
    runs: [],
    figures: [],
    notes: [],
  };
  log(`8. drain of ${sessions} sessions, creates answered without an id, ${indexLagMs} ms index lag, ${searchLatencyMs} ms per search`);
  const rig = new Rig();
  try {
    const { redis, sims } = await rig.start({ rateLimit: { requests: perMin, perMs: MIN } });
    sims.xsoar.setMode({ createAnswer: 'noId', indexLagMs, keepDbotMirrorId: false });
    sims.xsoar.setFaults({ searchLatencyMs });
    const tenant = drainTenant(sessions, { withNames: true, seed: 19 });
    sims.code42.loadTenant(tenant);
    const env = daemonEnv(sims, redis.url, { CODE42_RATE_LIMIT: `${perMin}/min`, WORKER_CONCURRENCY: '8' });
    const daemon: BenchDaemon = await rig.daemon('daemon', env, opts.nodeArgs);
    const ledger = new Ledger(redis.client, stateKeys('bench'));
    let lastLog = Date.now();
    await until(
      () => {
        checkAlive([daemon]);
        const stored = sims.xsoar.stats().stored;
        if (Date.now() - lastLog > 15_000) {
          lastLog = Date.now();
          log(`  ${stored}/${sessions} incidents, ${sims.code42.stats().total} Code42 calls, ${sims.xsoar.stats().searches} searches`);
        }
        return stored >= sessions;
      },
      5 * MIN + (sessions / (perMin / MIN)) * 3,
      `${sessions} incidents`,
      50,
    );
    const drainedAt = Date.now();
    await until(async () => (await ledger.acceptedCount()) === 0, 60_000, 'every incident id found', 100).catch(() => undefined);
    const idsDoneMs = Date.now() - drainedAt;
    rig.sampler.sampleAll();
    const unresolved = await ledger.acceptedCount();
    const metrics = await daemon.metrics();
    const inc = incidentStats(sims);
    const start = firstCode42Request(sims);
    const end = inc.lastCreatedAt;
    const windowMs = Math.max(1, end - start);
    const c42 = sims.code42.stats();
    const pages = Math.ceil(sessions / 50);
    // What the budget allows: every Code42 call of the drain (events per session, list pages, oauth) at perMin.
    const budgetPerSec = sessions / (((sessions + pages + 1) / perMin) * 60);
    const rate = inc.distinct / (windowMs / 1000);
    const raw: Record<string, unknown> = {
      label: 's8',
      sessions,
      windowMs,
      sessionsPerSec: round(rate, 2),
      budgetSessionsPerSec: round(budgetPerSec, 2),
      ofBudgetPct: round((rate / budgetPerSec) * 100),
      incidents: inc,
      idsResolvedAfterDrainMs: idsDoneMs,
      unresolvedIds: unresolved,
      xsoar: sims.xsoar.stats(),
      code42: c42,
      viaAccepted: metric(metrics, 'code42_forwarder_incidents_total', { via: 'accepted' }),
      finalFailures: metric(metrics, 'code42_forwarder_job_failures_total', { final: 'true' }),
      daemonPeakRssMB: round(rig.sampler.peakRss('daemon') / MB),
    };
    await rig.close();
    raw.daemonExitCodes = rig.exitCodes;
    result.runs.push(raw);
    const run = `${sessions} sessions, no id, ${indexLagMs / 1000} s lag`;
    result.figures.push(
      figure({
        scenario: '8',
        run,
        name: 'drain rate, % of the Code42 budget',
        value: raw.ofBudgetPct as number,
        unit: '%',
        target: { op: '>=', value: 90, text: '≥ 90 (budget within 10 %)' },
        note: `${raw.sessionsPerSec as number}/s of ${raw.budgetSessionsPerSec as number}/s the budget allows; ${(raw.xsoar as { searches: number }).searches} searches for ${sessions} ids`,
      }),
      figure({ scenario: '8', run, name: 'duplicates', value: inc.duplicates, unit: '', target: { op: '==', value: 0, text: '= 0' }, note: `${sessions - inc.distinct} missing` }),
      figure({ scenario: '8', run, name: 'ids not found', value: unresolved, unit: '', target: { op: '==', value: 0, text: '= 0' }, note: `all found ${round(idsDoneMs / 1000)} s after the last create` }),
    );
  } finally {
    await rig.close();
  }
  return result;
}
