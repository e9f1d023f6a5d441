/**
 * The fault-injection harness: a private redis-server (AOF on), both simulators and the built daemon
 * as child processes. At the end it compares what XSOAR holds with what Code42 holds: expected, got,
 * missing, duplicates and wrong fields.
 */
import assert from 'node:assert/strict';
import { Redis } from 'ioredis';
import { Code42Simulator, generateTenant, type Code42SimulatorOptions, type TenantOptions, type WireSession } from '../sims/code42/index.js';
import { XsoarSimulator, type StoredIncident, type XsoarSimulatorOptions } from '../sims/xsoar/index.js';
import { startDaemon, type DaemonProcess, type RunResult } from '../helpers/daemon-process.js';
import { expectedIncident } from '../helpers/expected-incident.js';
import { freePort } from '../helpers/ports.js';
import { openRedis, waitForDrain, withForwardQueue } from '../helpers/queue.js';
import { RedisClusterProcess } from '../helpers/redis-cluster-process.js';
import { RedisProcess } from '../helpers/redis-process.js';
import { uniquePrefix } from '../helpers/redis.js';
import { CODE42_CLIENT_ID, CODE42_CLIENT_SECRET, XSOAR_API_KEY } from '../helpers/stack.js';
import { waitFor } from '../helpers/wait.js';
import { onCleanup } from '../helpers/cleanup.js';
import { forwardJobId, stateKeys } from '../../src/store/keys.js';
import { Ledger } from '../../src/forward/ledger.js';

/** Scales scenario sizes: FAULTS_SCALE=0.5 halves sessions and fault counts (for quick runs). */
export const SCALE = Number(process.env.FAULTS_SCALE ?? '1') || 1;
export const scaled = (n: number): number => Math.max(1, Math.round(n * SCALE));

export interface FaultRunOptions {
  name: string;
  code42?: Code42SimulatorOptions;
  xsoar?: Partial<XsoarSimulatorOptions>;
  /** Daemon environment on top of the fault defaults. */
  env?: Record<string, string>;
  redisPassword?: string;
  /** Runs on a private three-master Redis Cluster (redis+cluster://) instead of one redis-server. */
  cluster?: boolean;
}

export interface FaultReport {
  expected: number;
  got: number;
  missing: string[];
  duplicates: number;
  wrongFields: string[];
  failed: Array<{ id: string; reason: string }>;
}

const MIN = 60_000;

export class FaultRun {
  readonly redis: RedisProcess;
  /** The cluster of a `cluster` run (then `redis` is never started). */
  readonly cluster: RedisClusterProcess | undefined;
  readonly code42: Code42Simulator;
  readonly xsoar: XsoarSimulator;
  readonly prefix: string;
  /** QUEUE_PREFIX as the daemon is given it. */
  readonly queuePrefix: string;
  env: Record<string, string> = {};
  /** Daemon slots; a slot keeps its ops port across restarts. */
  private readonly daemons = new Map<number, DaemonProcess>();
  private readonly ports = new Map<number, number>();
  /** Everything every daemon printed, including the ones killed. */
  readonly output: string[] = [];
  private sessionsLoaded = 0;

  private constructor(private readonly opts: FaultRunOptions) {
    this.redis = new RedisProcess(opts.redisPassword);
    this.code42 = new Code42Simulator({ clientId: CODE42_CLIENT_ID, clientSecret: CODE42_CLIENT_SECRET, ...opts.code42 });
    this.xsoar = new XsoarSimulator({ apiKey: XSOAR_API_KEY, ...opts.xsoar });
    this.cluster = opts.cluster ? new RedisClusterProcess() : undefined;
    this.queuePrefix = uniquePrefix(`faults-${opts.name}`);
    // On a cluster the daemon wraps QUEUE_PREFIX in braces (a hash tag): the keys live under that.
    this.prefix = opts.cluster ? `{${this.queuePrefix}}` : this.queuePrefix;
    // Before anything starts: a failing test still stops every daemon, simulator and redis-server.
    onCleanup(() => this.close());
  }

  static async start(opts: FaultRunOptions): Promise<FaultRun> {
    const run = new FaultRun(opts);
    try {
      if (run.cluster) await run.cluster.start();
      else await run.redis.start();
      await Promise.all([run.code42.start(), run.xsoar.start()]);
    } catch (err) {
      // Nothing may outlive a failed start: the test would hang on a stray server.
      await run.redis.destroy();
      await run.cluster?.destroy();
      await Promise.allSettled([run.code42.close(), run.xsoar.close()]);
      throw err;
    }
    run.env = {
      CODE42_API_URL: run.code42.url,
      CODE42_CLIENT_ID: CODE42_CLIENT_ID,
      CODE42_CLIENT_SECRET: CODE42_CLIENT_SECRET,
      CODE42_RATE_LIMIT: '60000/min',
      XSOAR_URL: run.xsoar.url,
      XSOAR_API_KEY: opts.xsoar?.apiKey ?? XSOAR_API_KEY,
      REDIS_URL: run.cluster ? run.cluster.url : run.redis.url,
      QUEUE_PREFIX: run.queuePrefix,
      POLL_INTERVAL: '300ms',
      WORKER_LOCK_DURATION: '2s',
      WORKER_BACKOFF: '100ms',
      WORKER_ATTEMPTS: '15',
      XSOAR_TIMEOUT: '1s',
      XSOAR_SEARCH_SETTLE: '100ms',
      HTTP_HOST: '127.0.0.1',
      LOG_LEVEL: 'info',
      // Sessions added mid-run began up to 20 min ago: the sweeps that catch them run compressed too.
      SWEEP_INTERVAL: '3s',
      ...opts.env,
    };
    return run;
  }

  /** Adds `count` sessions to the Code42 tenant (mostly open; some outside the filter). */
  addSessions(count: number, extra: Partial<TenantOptions> = {}): void {
    const now = Date.now();
    const tenant = generateTenant({
      sessions: count,
      seed: 1000 + this.sessionsLoaded,
      idPrefix: `${this.opts.name}-${this.sessionsLoaded}`,
      beginFrom: now - 20 * MIN,
      beginTo: now,
      eventsPerSession: (_i, rnd) => Math.floor(rnd() * 3),
      ...extra,
    });
    this.code42.loadTenant(tenant);
    this.sessionsLoaded += count;
  }

  async startDaemon(slot = 0, extraEnv: Record<string, string> = {}): Promise<DaemonProcess> {
    if (!this.ports.has(slot)) this.ports.set(slot, await freePort());
    const daemon = startDaemon({ ...this.env, HTTP_PORT: String(this.ports.get(slot)), ...extraEnv });
    this.daemons.set(slot, daemon);
    return daemon;
  }

  /** Sends a signal to a running daemon (SIGSTOP/SIGCONT freeze and resume it). */
  signal(slot: number, signal: NodeJS.Signals): void {
    this.daemons.get(slot)?.child.kill(signal);
  }

  port(slot = 0): number {
    return this.ports.get(slot) ?? 0;
  }

  async stopDaemon(slot = 0, signal: NodeJS.Signals = 'SIGKILL'): Promise<RunResult | undefined> {
    const daemon = this.daemons.get(slot);
    if (!daemon) return undefined;
    this.daemons.delete(slot);
    const result = await daemon.stop(signal);
    this.output.push(result.stdout + result.stderr);
    return result;
  }

  /** Sessions that must become incidents: inside the default filter (all severities, OPEN/OPEN_NEW_DATA). */
  expectedSessions(): WireSession[] {
    return this.code42
      .sessionIds()
      .map((id) => this.code42.getSession(id) as WireSession)
      .filter((s) => {
        const state = [...s.states].sort((a, b) => a.sourceTimestamp - b.sourceTimestamp).at(-1)?.state;
        return Math.max(0, ...s.scores.map((x) => x.severity)) >= 1 && (state === 'OPEN' || state === 'OPEN_NEW_DATA');
      });
  }

  /** Waits until every expected session has an incident (or sits in the failed set) and the queue is empty. */
  async waitComplete(timeoutMs = 120_000): Promise<void> {
    const expected = new Set(this.expectedSessions().map((s) => s.sessionId));
    await withForwardQueue(
      this.prefix,
      (queue) =>
        waitFor(
          async () => {
            const got = new Set(this.xsoar.incidents().map(sessionOfIncident));
            const missing = [...expected].filter((id) => !got.has(id));
            if (missing.length === 0) return true;
            if (missing.length > 20) return false;
            const states = await Promise.all(missing.map(async (id) => (await queue.getJob(forwardJobId(id)))?.isFailed() ?? false));
            return states.every(Boolean);
          },
          { timeoutMs, intervalMs: 100, what: `${expected.size} incidents` },
        ),
      this.env.REDIS_URL,
    ).catch(() => undefined);
    await waitForDrain(this.prefix, () => true, 30_000, this.env.REDIS_URL).catch(() => undefined);
    // Jobs end at an id-less 2xx: the ids are looked up apart, through the index lag.
    const redis = openRedis(this.env.REDIS_URL, 3);
    try {
      const ledger = new Ledger(redis, stateKeys(this.prefix));
      await waitFor(async () => (await ledger.awaitingIdCount()) === 0, { timeoutMs: 30_000, intervalMs: 100, what: 'every incident id looked up' }).catch(() => undefined);
    } finally {
      redis.disconnect();
    }
  }

  async report(): Promise<FaultReport> {
    const sessions = this.expectedSessions();
    const incidents = this.xsoar.incidents();
    const byMirror = new Map<string, number>();
    for (const i of incidents) byMirror.set(sessionOfIncident(i), (byMirror.get(sessionOfIncident(i)) ?? 0) + 1);
    const actors = new Map(this.code42.actors().map((a) => [a.actorId, a]));
    const rules = new Map(this.code42.rules().map((r) => [r.id, r]));
    const consoleUrl = new URL(this.code42.url).origin;
    const wrongFields: string[] = [];
    for (const s of sessions) {
      const inc = incidents.find((i) => sessionOfIncident(i) === s.sessionId);
      if (!inc) continue;
      const want = expectedIncident(s, this.code42.eventsOf(s.sessionId), actors, rules, consoleUrl);
      const cf = inc.CustomFields;
      const checks: Array<[string, unknown, unknown]> = [
        ['name', inc.name, want.name],
        ['severity', inc.severity, want.severity],
        ['code42alertstate', cf.code42alertstate, want.state],
        ['code42username', cf.code42username, want.actor],
        ['code42alertdescription', cf.code42alertdescription, want.ruleNames],
        ['code42severity', cf.code42severity, want.riskSeverity],
        ['code42alerttimestamp', cf.code42alerttimestamp, want.occurred],
      ];
      for (const [field, got, expected] of checks) if (got !== expected) wrongFields.push(`${s.sessionId}.${field}: ${JSON.stringify(got)} ≠ ${JSON.stringify(expected)}`);
    }
    const failed = await withForwardQueue(this.prefix, async (q) => (await q.getFailed()).map((j) => ({ id: String(j.id), reason: j.failedReason })), this.env.REDIS_URL);
    return {
      expected: sessions.length,
      got: new Set(sessions.map((s) => s.sessionId).filter((id) => byMirror.has(id))).size,
      missing: sessions.map((s) => s.sessionId).filter((id) => !byMirror.has(id)),
      duplicates: [...byMirror.values()].reduce((sum, n) => sum + Math.max(0, n - 1), 0),
      wrongFields,
      failed,
    };
  }

  /** One summary line per scenario, with the figures. */
  static summary(name: string, r: FaultReport, extra: Record<string, string | number> = {}): string {
    const more = Object.entries(extra).map(([k, v]) => `${k}=${v}`).join(' ');
    return `FAULTS ${name}: expected=${r.expected} got=${r.got} missing=${r.missing.length} duplicates=${r.duplicates} wrongFields=${r.wrongFields.length} failed=${r.failed.length}${more ? ` ${more}` : ''}`;
  }

  allOutput(): string {
    return [...this.output, ...[...this.daemons.values()].map((d) => d.output())].join('\n');
  }

  /** Reads every key and value under the deployment (for secret scans). */
  async dumpKeyspace(): Promise<string> {
    const redis = new Redis(this.env.REDIS_URL as string, { maxRetriesPerRequest: 3, protocol: 2 });
    const parts: string[] = [];
    try {
      let cursor = '0';
      do {
        const [next, keys] = await redis.scan(cursor, 'COUNT', 1000);
        cursor = next;
        for (const key of keys) {
          parts.push(key);
          const type = await redis.type(key);
          if (type === 'string') parts.push((await redis.getBuffer(key))?.toString('latin1') ?? '');
          else if (type === 'hash') parts.push(JSON.stringify(await redis.hgetall(key)));
          else if (type === 'list') parts.push(JSON.stringify(await redis.lrange(key, 0, -1)));
          else if (type === 'set') parts.push(JSON.stringify(await redis.smembers(key)));
          else if (type === 'zset') parts.push(JSON.stringify(await redis.zrange(key, '0', '-1', 'WITHSCORES')));
          else if (type === 'stream') parts.push(JSON.stringify(await redis.xrange(key, '-', '+')));
        }
      } while (cursor !== '0');
    } finally {
      redis.disconnect();
    }
    return parts.join('\n');
  }

  async close(): Promise<void> {
    for (const slot of [...this.daemons.keys()]) await this.stopDaemon(slot, 'SIGKILL');
    await Promise.all([this.code42.close(), this.xsoar.close()]);
    await this.redis.destroy();
    await this.cluster?.destroy();
  }
}

/** The session an incident was made for, whether or not the server kept its dbotMirrorId. */
export function sessionOfIncident(inc: StoredIncident): string {
  const alertId = inc.CustomFields.code42alertid;
  return typeof alertId === 'string' ? alertId : (inc.request.dbotMirrorId ?? '');
}

export function pause(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms));
}

/** The guarantee every fault scenario proves: every expected session made one incident, none twice, none stuck in the failed set. */
export function assertExactlyOnce(report: FaultReport): void {
  assert.deepEqual(report.missing, [], 'every expected session has its incident');
  assert.equal(report.duplicates, 0, 'no session has two incidents');
  assert.deepEqual(report.failed, [], 'nothing in the failed set');
}
