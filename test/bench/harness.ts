/**
 * What every bench scenario is made of: a private redis-server (AOF on), both simulators in this
 * process, and the built daemon as child processes, all on 127.0.0.1. Everything started here is
 * registered so that it is stopped at the end, on an error and on Ctrl-C.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { closeSync, mkdirSync, mkdtempSync, openSync, readFileSync, rmSync, rmdirSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Redis } from 'ioredis';
import { MAIN_JS } from '../helpers/daemon-process.js';
import { freePort } from '../helpers/ports.js';
import { RedisProcess } from '../helpers/redis-process.js';
import { CODE42_CLIENT_ID, CODE42_CLIENT_SECRET, XSOAR_API_KEY } from '../helpers/stack.js';
import { Code42Simulator, type Code42SimulatorOptions } from '../sims/code42/index.js';
import { XsoarSimulator } from '../sims/xsoar/index.js';
import { indexXsoarSearch } from './xsoar-search-index.js';

// ---------------------------------------------------------------------------------------------------------------
// Cleanup on exit, error and Ctrl-C

const liveChildren = new Set<ChildProcess>();
const liveRedis = new Map<RedisProcess, number | undefined>();
let interrupted = false;

export function wasInterrupted(): boolean {
  return interrupted;
}

/** Stops every daemon and redis-server still running (awaits their exit). */
export async function stopEverything(): Promise<void> {
  await Promise.all(
    [...liveChildren].map(async (child) => {
      if (child.exitCode !== null || child.signalCode !== null) return;
      const exited = new Promise((r) => child.once('exit', r));
      child.kill('SIGTERM');
      const timer = setTimeout(() => child.kill('SIGKILL'), 5_000);
      await exited;
      clearTimeout(timer);
    }),
  );
  await Promise.all([...liveRedis.keys()].map((r) => r.destroy().catch(() => undefined)));
  liveRedis.clear();
}

/** Installs the Ctrl-C / SIGTERM handlers and a last-resort kill on exit. */
export function installCleanup(): void {
  const onSignal = (signal: NodeJS.Signals): void => {
    if (interrupted) return;
    interrupted = true;
    process.stderr.write(`\n${signal}: stopping the daemons and redis-servers of the bench...\n`);
    void stopEverything().finally(() => {
      removeBenchLogs();
      process.exit(130);
    });
  };
  process.on('SIGINT', onSignal);
  process.on('SIGTERM', onSignal);
  process.on('exit', () => {
    for (const child of liveChildren) if (child.exitCode === null && child.signalCode === null) child.kill('SIGKILL');
    for (const pid of liveRedis.values()) {
      if (pid === undefined) continue;
      try {
        process.kill(pid, 'SIGKILL');
      } catch {
        // already gone
      }
    }
  });
}

// ---------------------------------------------------------------------------------------------------------------
// Redis

export interface BenchRedis {
  process: RedisProcess;
  url: string;
  pid: number;
  /** A command connection for the bench's own checks. */
  client: Redis;
}

export async function startRedis(): Promise<BenchRedis> {
  const proc = new RedisProcess();
  liveRedis.set(proc, undefined);
  await proc.start();
  const client = new Redis(proc.url, { maxRetriesPerRequest: null, protocol: 2 });
  client.on('error', () => undefined);
  const info = await client.info('server');
  const pid = Number(/^process_id:(\d+)/m.exec(info)?.[1] ?? NaN);
  liveRedis.set(proc, Number.isFinite(pid) ? pid : undefined);
  return { process: proc, url: proc.url, pid, client };
}

export async function stopRedis(r: BenchRedis): Promise<void> {
  r.client.disconnect();
  await r.process.destroy();
  liveRedis.delete(r.process);
}

/** `redis-server --version`, e.g. "7.0.15". */
export function redisVersion(): Promise<string> {
  return new Promise<string>((resolve) => {
    const child = spawn('redis-server', ['--version'], { stdio: ['ignore', 'pipe', 'ignore'] });
    let out = '';
    child.stdout.on('data', (d: Buffer) => (out += d.toString()));
    child.on('error', () => resolve('unknown'));
    child.on('exit', () => resolve(/v=(\S+)/.exec(out)?.[1] ?? (out.trim() || 'unknown')));
  });
}

// ---------------------------------------------------------------------------------------------------------------
// Simulators

export interface Sims {
  code42: Code42Simulator;
  xsoar: XsoarSimulator;
  close(): Promise<void>;
}

export async function startSims(code42: Code42SimulatorOptions = {}): Promise<Sims> {
  const c42 = new Code42Simulator({ clientId: CODE42_CLIENT_ID, clientSecret: CODE42_CLIENT_SECRET, ...code42 });
  const xsoar = new XsoarSimulator({ apiKey: XSOAR_API_KEY });
  // Exact-id searches answered from an index instead of a scan of every stored incident (see README).
  indexXsoarSearch(xsoar);
  await Promise.all([c42.start(), xsoar.start()]);
  return {
    code42: c42,
    xsoar,
    async close() {
      await Promise.all([c42.close(), xsoar.close()]);
    },
  };
}

/** Environment of a daemon pointed at the simulators and a Redis (nothing inherited but PATH/HOME). */
export function daemonEnv(sims: Sims, redisUrl: string, extra: Record<string, string> = {}): Record<string, string> {
  return {
    CODE42_API_URL: sims.code42.url,
    CODE42_CLIENT_ID: CODE42_CLIENT_ID,
    CODE42_CLIENT_SECRET: CODE42_CLIENT_SECRET,
    XSOAR_URL: sims.xsoar.url,
    XSOAR_API_KEY: XSOAR_API_KEY,
    REDIS_URL: redisUrl,
    QUEUE_PREFIX: 'bench',
    HTTP_HOST: '127.0.0.1',
    LOG_LEVEL: 'info',
    ...extra,
  };
}

// ---------------------------------------------------------------------------------------------------------------
// Daemons

export interface BenchDaemon {
  label: string;
  child: ChildProcess;
  pid: number;
  port: number;
  logFile: string;
  /** Resolves once the process has exited. */
  exited: Promise<{ code: number | null; signal: NodeJS.Signals | null }>;
  metrics(): Promise<Metrics>;
  /** SIGTERM (graceful; the daemon exits 0), SIGKILL after `graceMs`. */
  stop(graceMs?: number): Promise<{ code: number | null; signal: NodeJS.Signals | null }>;
  /** The last `bytes` of its log. */
  logTail(bytes?: number): string;
}

/** The daemon's entry point: the project's build, or another build to compare (`BENCH_MAIN`). */
export const DAEMON_MAIN = process.env.BENCH_MAIN?.trim() || MAIN_JS;

/**
 * Node flags for every daemon: by default those of the `start` script (package.json), which the
 * container image runs too, so the bench measures the daemon as deployed. `BENCH_NODE_ARGS`
 * (space-separated; empty string for none) overrides them to compare.
 */
export const DAEMON_NODE_ARGS = (process.env.BENCH_NODE_ARGS ?? startScriptNodeFlags()).split(/\s+/).filter((a) => a !== '');

function startScriptNodeFlags(): string {
  const pkg = JSON.parse(readFileSync(new URL('../../package.json', import.meta.url), 'utf8')) as { scripts?: Record<string, string> };
  const words = (pkg.scripts?.start ?? '').split(/\s+/);
  return words.slice(1, words.indexOf('dist/main.js')).join(' ');
}

let workDir: string | undefined;

/** A temp directory for daemon logs (and profiles) of this bench run. */
export function benchDir(): string {
  workDir ??= mkdtempSync(join(tmpdir(), 'c42x-bench-'));
  return workDir;
}

/** Removes the daemon logs, and the work dir itself unless something else (a profile) is in it. */
export function removeBenchLogs(): void {
  if (!workDir) return;
  rmSync(join(workDir, 'logs'), { recursive: true, force: true });
  try {
    rmdirSync(workDir);
  } catch {
    // not empty: a profile is kept there
  }
}

/**
 * Spawns `node [nodeArgs] dist/main.js run` with exactly `env` (plus PATH/HOME and a free HTTP_PORT),
 * its output going to a log file (so the bench process spends nothing on it), and waits until its
 * /metrics answers.
 */
export async function startDaemon(label: string, env: Record<string, string>, nodeArgs: string[] = []): Promise<BenchDaemon> {
  const port = await freePort();
  const logDir = join(benchDir(), 'logs');
  mkdirSync(logDir, { recursive: true });
  const logFile = join(logDir, `${label}-${Date.now()}.log`);
  const fd = openSync(logFile, 'a');
  const child = spawn(process.execPath, [...DAEMON_NODE_ARGS, ...nodeArgs, DAEMON_MAIN, 'run'], {
    env: { PATH: process.env.PATH ?? '', HOME: process.env.HOME ?? '/tmp', ...env, HTTP_PORT: String(port) },
    stdio: ['ignore', fd, fd],
  });
  closeSync(fd);
  liveChildren.add(child);
  const exited = new Promise<{ code: number | null; signal: NodeJS.Signals | null }>((resolve) => {
    child.on('exit', (code, signal) => {
      liveChildren.delete(child);
      resolve({ code, signal });
    });
  });
  const logTail = (bytes = 4000): string => {
    try {
      const size = statSync(logFile).size;
      const text = readFileSync(logFile, 'utf8');
      return size > bytes ? text.slice(-bytes) : text;
    } catch {
      return '';
    }
  };
  const d: BenchDaemon = {
    label,
    child,
    pid: child.pid ?? -1,
    port,
    logFile,
    exited,
    metrics: () => scrape(port),
    logTail,
    async stop(graceMs = 30_000) {
      if (child.exitCode === null && child.signalCode === null) child.kill('SIGTERM');
      const timer = setTimeout(() => child.kill('SIGKILL'), graceMs);
      const result = await exited;
      clearTimeout(timer);
      return result;
    },
  };
  const deadline = Date.now() + 20_000;
  for (;;) {
    if (child.exitCode !== null) throw new Error(`daemon ${label} exited with ${child.exitCode} at start-up:\n${logTail()}`);
    try {
      await scrape(port);
      return d;
    } catch {
      if (Date.now() > deadline) throw new Error(`daemon ${label}: /metrics did not answer within 20 s:\n${logTail()}`);
      await sleep(50);
    }
  }
}

// ---------------------------------------------------------------------------------------------------------------
// /metrics

/** Prometheus text as `name{labels}` → value (labels as printed, in the printed order). */
export type Metrics = Map<string, number>;

export async function scrape(port: number): Promise<Metrics> {
  const res = await fetch(`http://127.0.0.1:${port}/metrics`, { signal: AbortSignal.timeout(5_000) });
  if (!res.ok) throw new Error(`/metrics answered ${res.status}`);
  return parseMetrics(await res.text());
}

export function parseMetrics(text: string): Metrics {
  const out: Metrics = new Map();
  for (const line of text.split('\n')) {
    if (line === '' || line.startsWith('#')) continue;
    const space = line.lastIndexOf(' ');
    if (space < 0) continue;
    const value = Number(line.slice(space + 1));
    if (!Number.isNaN(value)) out.set(line.slice(0, space), value);
  }
  return out;
}

/** Sum of every series of `name` whose labels include all of `labels`. */
export function metric(m: Metrics, name: string, labels: Record<string, string> = {}): number {
  let sum = 0;
  const wanted = Object.entries(labels).map(([k, v]) => `${k}="${v}"`);
  for (const [key, value] of m) {
    const brace = key.indexOf('{');
    const base = brace < 0 ? key : key.slice(0, brace);
    if (base !== name) continue;
    if (wanted.every((w) => key.includes(w))) sum += value;
  }
  return sum;
}

// ---------------------------------------------------------------------------------------------------------------
// Small helpers

export function sleep(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms));
}

/** Polls `check` until it is truthy; throws after `timeoutMs` (or at once when the bench was interrupted). */
export async function until<T>(check: () => T | Promise<T>, timeoutMs: number, what: string, intervalMs = 100): Promise<NonNullable<T>> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    if (interrupted) throw new Error('interrupted');
    const v = await check();
    if (v) return v as NonNullable<T>;
    if (Date.now() > deadline) throw new Error(`timed out after ${Math.round(timeoutMs / 1000)} s waiting for ${what}`);
    await sleep(intervalMs);
  }
}

export const MB = 1024 * 1024;
