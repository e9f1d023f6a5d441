/**
 * `npm run bench`: runs the built daemon against the simulators and a private redis-server in five
 * scenarios, prints a markdown table (figure, target, PASS/MISS), writes every raw figure to
 * bench/results.json, then repeats the run behind the worst figure under `node --cpu-prof` and
 * prints the functions with the most self time. See test/bench/README.md.
 *
 * Environment: BENCH_SCALE (default 1), BENCH_ONLY (e.g. "1,3"), BENCH_PROFILE (auto | 0 | 1 | 2 | 3 | 4 | 5),
 * BENCH_PROFILE_SCALE (default half of BENCH_SCALE), BENCH_MAIN (another build's main.js to measure),
 * BENCH_NODE_ARGS (node flags for every daemon).
 */
import { mkdirSync, readdirSync, statSync, writeFileSync } from 'node:fs';
import { cpus, release, totalmem } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { profileMarkdown, summarizeProfile, type ProfileSummary } from './cpuprofile.js';
import { DAEMON_MAIN, DAEMON_NODE_ARGS, benchDir, installCleanup, redisVersion, removeBenchLogs, stopEverything, wasInterrupted } from './harness.js';
import { CLK_TCK } from './proc.js';
import {
  scenario1,
  scenario2,
  scenario3,
  scenario4,
  scenario5,
  type BenchOptions,
  type Figure,
  type RerunKey,
  type ScenarioResult,
} from './scenarios.js';
import { scenario6 } from './steady-state.js';
import { scenario7, scenario8 } from './events-and-ids.js';

const ROOT = fileURLToPath(new URL('../../', import.meta.url));
const RESULTS = join(ROOT, 'bench', 'results.json');

function log(line: string): void {
  process.stderr.write(`${new Date().toISOString().slice(11, 19)} ${line}\n`);
}

function envNumber(name: string, fallback: number): number {
  const raw = process.env[name];
  if (raw === undefined || raw.trim() === '') return fallback;
  const n = Number(raw);
  if (!Number.isFinite(n) || n <= 0) throw new Error(`${name} must be a positive number, got ${raw}`);
  return n;
}

const SCENARIOS: Record<string, (o: BenchOptions, l: (s: string) => void) => Promise<ScenarioResult>> = {
  '1': (o, l) => scenario1(o, l),
  '2': (o, l) => scenario2(o, l),
  '3': (o, l) => scenario3(o, l),
  '4': (o, l) => scenario4(o, l),
  '5': (o, l) => scenario5(o, l),
  '6': (o, l) => scenario6(o, l),
  '7': (o, l) => scenario7(o, l),
  '8': (o, l) => scenario8(o, l),
};

function rerunOf(key: RerunKey, o: BenchOptions): Promise<ScenarioResult> {
  switch (key.scenario) {
    case '1':
      return scenario1(o, log, { concurrency: key.concurrency });
    case '2':
      return scenario2(o, log, { withNames: key.withNames });
    case '3':
      return scenario3(o, log);
    case '4':
      return scenario4(o, log);
    case '5':
      return scenario5(o, log, { replicas: key.replicas });
  }
}

function fmt(v: number | string): string {
  if (typeof v === 'string') return v;
  if (!Number.isFinite(v)) return String(v);
  if (Math.abs(v) >= 1000) return Math.round(v).toLocaleString('en-US');
  return String(Math.round(v * 1000) / 1000);
}

function table(figures: Figure[]): string {
  const lines = ['| # | run | figure | value | target | result | note |', '|---|---|---|---:|---|---|---|'];
  for (const f of figures) {
    const value = `${fmt(f.value)}${f.unit ? ` ${f.unit}` : ''}`;
    const result = f.target ? (f.pass ? 'PASS' : '**MISS**') : '–';
    lines.push(`| ${f.scenario} | ${f.run} | ${f.name} | ${value} | ${f.target?.text ?? '–'} | ${result} | ${f.note ?? ''} |`);
  }
  return lines.join('\n');
}

/** The figure to profile: the biggest miss, or, when everything passes, the one closest to its target. */
function worstFigure(figures: Figure[]): Figure | undefined {
  const candidates = figures.filter((f) => f.target && f.rerun && f.severity !== undefined);
  const misses = candidates.filter((f) => f.pass === false);
  const pool = misses.length > 0 ? misses : candidates;
  return pool.sort((a, b) => (b.severity ?? 0) - (a.severity ?? 0))[0];
}

function newestProfiles(dir: string): string[] {
  try {
    return readdirSync(dir)
      .filter((f) => f.endsWith('.cpuprofile'))
      .map((f) => join(dir, f))
      .sort((a, b) => statSync(b).size - statSync(a).size);
  } catch {
    return [];
  }
}

async function main(): Promise<number> {
  installCleanup();
  const scale = envNumber('BENCH_SCALE', 1);
  const onlyRaw = process.env.BENCH_ONLY?.trim();
  const only = onlyRaw ? onlyRaw.split(',').map((s) => s.trim()).filter(Boolean) : Object.keys(SCENARIOS);
  for (const id of only) if (!SCENARIOS[id]) throw new Error(`BENCH_ONLY: unknown scenario ${id} (1..8)`);
  const profileMode = (process.env.BENCH_PROFILE ?? 'auto').trim();
  const profileScale = envNumber('BENCH_PROFILE_SCALE', scale / 2);

  const cpuList = cpus();
  const machine = {
    cores: cpuList.length,
    cpuModel: cpuList[0]?.model ?? 'unknown',
    memoryGB: Math.round((totalmem() / 1024 ** 3) * 10) / 10,
    kernel: release(),
    node: process.version,
    redisServer: await redisVersion(),
    clockTicksPerSec: CLK_TCK,
    daemon: [...DAEMON_NODE_ARGS, DAEMON_MAIN].join(' '),
  };
  const startedAt = new Date().toISOString();
  log(`bench: scale ${scale}, scenarios ${only.join(',')}, ${machine.cores} cores, Node ${machine.node}, redis-server ${machine.redisServer}`);

  const results: ScenarioResult[] = [];
  const opts: BenchOptions = { scale };
  for (const id of only) {
    if (wasInterrupted()) break;
    const run = SCENARIOS[id] as (o: BenchOptions, l: (s: string) => void) => Promise<ScenarioResult>;
    const t0 = Date.now();
    try {
      const r = await run(opts, log);
      r.setup.wallSeconds = Math.round((Date.now() - t0) / 1000);
      results.push(r);
    } catch (err) {
      if (wasInterrupted()) break;
      log(`scenario ${id} failed: ${(err as Error).stack ?? String(err)}`);
      results.push({ id, title: `scenario ${id}`, setup: { wallSeconds: Math.round((Date.now() - t0) / 1000) }, runs: [], figures: [], notes: [], error: (err as Error).message });
    }
    log(`scenario ${id} done in ${Math.round((Date.now() - t0) / 1000)} s`);
  }

  const figures = results.flatMap((r) => r.figures);
  let profile: { figure: Figure; scale: number; files: string[]; summary: ProfileSummary; run: ScenarioResult } | { error: string; figure?: Figure } | undefined;
  if (profileMode !== '0' && !wasInterrupted()) {
    let target: Figure | undefined;
    if (profileMode === 'auto') target = worstFigure(figures);
    else target = figures.find((f) => f.scenario === profileMode && f.rerun && f.target) ?? figures.find((f) => f.scenario === profileMode && f.rerun);
    if (target?.rerun) {
      const dir = join(benchDir(), `profile-${Date.now()}`);
      mkdirSync(dir, { recursive: true });
      log(`profiling: "${target.scenario} ${target.run}: ${target.name}" again at scale ${profileScale} under node --cpu-prof (${dir})`);
      try {
        const run = await rerunOf(target.rerun, { scale: profileScale, nodeArgs: ['--cpu-prof', `--cpu-prof-dir=${dir}`] });
        const files = newestProfiles(dir);
        const file = files[0];
        if (!file) throw new Error(`no .cpuprofile written in ${dir}`);
        profile = { figure: target, scale: profileScale, files, summary: summarizeProfile(file, 15), run };
      } catch (err) {
        log(`profiling failed: ${(err as Error).message}`);
        profile = { error: (err as Error).message, figure: target };
      }
    }
  }

  mkdirSync(join(ROOT, 'bench'), { recursive: true });
  const out = { startedAt, finishedAt: new Date().toISOString(), scale, scenarios: only, machine, results, figures, profile };
  writeFileSync(RESULTS, `${JSON.stringify(out, null, 1)}\n`);

  const md: string[] = [];
  md.push(`## code42-xsoar-forwarder bench (${startedAt})`);
  md.push('');
  md.push(`Machine: ${machine.cores} cores (${machine.cpuModel}), ${machine.memoryGB} GB, Linux ${machine.kernel}; Node ${machine.node}; redis-server ${machine.redisServer}. Scale ${scale}. Daemon: ${machine.daemon}.`);
  md.push('Daemon, redis-server and the bench process (both simulators) share these cores.');
  md.push('');
  md.push(table(figures));
  for (const r of results) {
    if (r.error) md.push('', `Scenario ${r.id} failed: ${r.error}`);
  }
  md.push('');
  md.push('Setups:');
  for (const r of results) md.push(`- ${r.id}. ${r.title}: ${Object.entries(r.setup).map(([k, v]) => `${k} ${Array.isArray(v) ? v.join('/') : String(v)}`).join('; ')}`);
  if (profile) {
    md.push('');
    if ('summary' in profile) {
      md.push(`### Profile: ${profile.figure.scenario} ${profile.figure.run}, ${profile.figure.name} (re-run at scale ${profile.scale})`);
      md.push('');
      md.push(profileMarkdown(profile.summary));
      const again = profile.run.figures.filter((f) => f.target);
      if (again.length > 0) md.push('', 'Figures of the profiled run (the profiler slows the daemon):', '', table(again));
    } else {
      md.push(`Profiling failed: ${profile.error}`);
    }
  }
  md.push('');
  md.push(`Raw figures: ${RESULTS}`);
  process.stdout.write(`${md.join('\n')}\n`);

  const failed = results.some((r) => r.error);
  if (!failed) removeBenchLogs();
  else log(`daemon logs kept in ${join(benchDir(), 'logs')}`);
  return failed ? 1 : 0;
}

main()
  .then(async (code) => {
    await stopEverything();
    process.exit(code);
  })
  .catch(async (err: unknown) => {
    log(`bench failed: ${(err as Error).stack ?? String(err)}`);
    await stopEverything();
    process.exit(1);
  });


