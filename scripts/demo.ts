/**
 * End-to-end demo: the built daemon forwards a simulated Code42 tenant into a simulated XSOAR, on 127.0.0.1.
 *
 *   npm run demo            (builds, then runs this file with tsx)
 *
 * It finds a Redis (reuses REDIS_URL or 127.0.0.1:6379, else starts a private redis-server), starts both
 * simulators, computes which sessions the daemon must forward (default ALERT_SEVERITIES and ALERT_STATES),
 * runs `node dist/main.js run` as a child process and shows its progress until every expected session is in
 * XSOAR exactly once. Then it stops the daemon with SIGTERM, prints a summary and removes everything it made:
 * the Redis keys under its own QUEUE_PREFIX, the simulators, and the redis-server if it started one.
 *
 * Environment (all optional):
 *   DEMO_SESSIONS   sessions in the simulated tenant       (default 300)
 *   DEMO_SEED       tenant seed                            (default 1)
 *   DEMO_TIMEOUT    seconds before the demo gives up       (default 120)
 *   REDIS_URL       Redis to use when one answers there    (default redis://127.0.0.1:6379)
 *
 * Exit code: 0 when every expected session became exactly one incident and the daemon stopped cleanly, else 1.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { closeSync, existsSync, mkdtempSync, openSync, readFileSync, rmSync } from 'node:fs';
import { createServer, type AddressInfo } from 'node:net';
import { constants as osConstants, tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { Queue } from 'bullmq';
import type { RedisConnection } from '../src/infra/redis.js';
import { closeRedis, createRedis, maskRedisUrl } from '../src/infra/redis.js';
import { Code42Simulator, type WireSession } from '../test/sims/code42/index.js';
import { SIM_DEFAULTS, demoTenant } from '../test/sims/serve.js';
import { XsoarSimulator, type StoredIncident } from '../test/sims/xsoar/index.js';
import { ensureRedis, ping, type RedisHandle } from './redis-server.mjs';
import { analystView, pickIncident } from './analyst-view.js';

const MAIN_JS = fileURLToPath(new URL('../dist/main.js', import.meta.url));

/** The daemon's defaults: ALERT_SEVERITIES=critical,high,moderate,low and ALERT_STATES=OPEN,OPEN_NEW_DATA. */
const FORWARDED_SEVERITIES: ReadonlySet<number> = new Set([4, 3, 2, 1]);
const FORWARDED_STATES: ReadonlySet<string> = new Set(['OPEN', 'OPEN_NEW_DATA']);
/** The simulator is unthrottled; this is the daemon's own request budget for the demo. */
const DEMO_RATE_LIMIT = '3000/min';
const XSOAR_SEVERITY_NAMES: ReadonlyMap<number, string> = new Map([
  [4, 'Critical'],
  [3, 'High'],
  [2, 'Medium'],
  [1, 'Low'],
  [0.5, 'Informational'],
  [0, 'Unknown'],
]);

const TICK_MS = 250;
const PLAIN_PROGRESS_EVERY_MS = 2_000;
/** Done must hold this long: more than one poll, so a late duplicate would still show up. */
const SETTLE_MS = 2_000;
/** The daemon exits within 30 s of SIGTERM; after that it is killed. */
const STOP_GRACE_MS = 35_000;
const TOP_ACTORS = 5;

// ---------------------------------------------------------------------------------------------------------------
// Small helpers

function intEnv(name: string, fallback: number, min: number, max: number): number {
  const raw = process.env[name];
  if (raw === undefined || raw.trim() === '') return fallback;
  const value = Number(raw);
  if (!Number.isInteger(value) || value < min || value > max) {
    throw new Error(`${name}=${raw}: expected an integer from ${min} to ${max}`);
  }
  return value;
}

const sleep = (ms: number): Promise<void> => new Promise((resolve) => setTimeout(resolve, ms));

/** Resolves with `p`, or with undefined when it takes longer than `ms`. */
async function within<T>(p: Promise<T>, ms: number): Promise<T | undefined> {
  let timer: NodeJS.Timeout | undefined;
  const timeout = new Promise<undefined>((resolve) => {
    timer = setTimeout(() => resolve(undefined), ms);
  });
  try {
    return await Promise.race([p, timeout]);
  } finally {
    clearTimeout(timer);
  }
}

function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const server = createServer();
    server.once('error', reject);
    server.listen(0, '127.0.0.1', () => {
      const { port } = server.address() as AddressInfo;
      server.close(() => resolve(port));
    });
  });
}

function seconds(ms: number): string {
  return `${(ms / 1000).toFixed(1)}s`;
}

function maxSeverity(session: WireSession): number {
  return session.scores.reduce((max, s) => Math.max(max, s.severity), 0);
}

/** The state of the latest entry by sourceTimestamp; on a tie the later entry wins, as in the API. */
function latestState(session: WireSession): string | undefined {
  let state: string | undefined;
  let at = Number.NEGATIVE_INFINITY;
  for (const entry of session.states) {
    if (entry.sourceTimestamp >= at) {
      state = entry.state;
      at = entry.sourceTimestamp;
    }
  }
  return state;
}

function readLog(path: string): string {
  try {
    return readFileSync(path, 'utf8').trimEnd();
  } catch {
    return '';
  }
}

function tail(path: string, lines: number): string {
  const text = readLog(path);
  return text === '' ? '(the daemon log is empty)' : text.split('\n').slice(-lines).join('\n');
}

// ---------------------------------------------------------------------------------------------------------------
// Progress display: redrawn in place on a terminal, plain lines every couple of seconds otherwise.

class Progress {
  private readonly tty = process.stdout.isTTY === true;
  private lastPlainAt = Number.NEGATIVE_INFINITY;
  private drawn = false;

  update(line: string): void {
    if (this.tty) {
      process.stdout.write(`\r\x1b[2K${line}`);
      this.drawn = true;
    } else if (Date.now() - this.lastPlainAt >= PLAIN_PROGRESS_EVERY_MS) {
      process.stdout.write(`${line}\n`);
      this.lastPlainAt = Date.now();
    }
  }

  /** Leaves `line` as the last progress line. */
  finish(line: string): void {
    if (this.tty) process.stdout.write(`\r\x1b[2K${line}\n`);
    else process.stdout.write(`${line}\n`);
    this.drawn = false;
  }

  /** Prints a message on its own line, above the progress line when one is drawn. */
  say(message: string): void {
    if (this.drawn) {
      process.stdout.write('\r\x1b[2K');
      this.drawn = false;
    }
    process.stdout.write(`${message}\n`);
  }
}

// ---------------------------------------------------------------------------------------------------------------
// The daemon as a child process

interface DaemonExit {
  code: number | null;
  signal: NodeJS.Signals | null;
}

class DaemonProcess {
  readonly exited: Promise<DaemonExit>;
  private readonly child: ChildProcess;

  constructor(env: Record<string, string>, readonly logPath: string) {
    // The daemon writes to the log file directly, so its output never mixes with the progress display.
    const log = openSync(logPath, 'a');
    try {
      this.child = spawn(process.execPath, [MAIN_JS, 'run'], {
        // Only what the daemon needs: a variable of the caller's shell (a proxy, ALERT_STATES...) must not leak in.
        env: { PATH: process.env.PATH ?? '', HOME: process.env.HOME ?? tmpdir(), ...env },
        stdio: ['ignore', log, log],
        // Its own process group: a Ctrl-C in the terminal reaches only the demo, which then stops the daemon
        // with one SIGTERM (a second signal would make the daemon skip its graceful shutdown).
        detached: true,
      });
    } finally {
      closeSync(log);
    }
    this.exited = new Promise((resolve) => {
      this.child.once('exit', (code, signal) => resolve({ code, signal }));
      this.child.once('error', () => resolve({ code: null, signal: null }));
    });
  }

  get pid(): number | undefined {
    return this.child.pid;
  }

  get running(): boolean {
    return this.child.exitCode === null && this.child.signalCode === null && this.child.pid !== undefined;
  }

  /** SIGTERM, then SIGKILL if it is still running after `graceMs`. */
  async stop(graceMs: number): Promise<DaemonExit> {
    if (this.running) this.child.kill('SIGTERM');
    const exit = await within(this.exited, graceMs);
    if (exit) return exit;
    this.child.kill('SIGKILL');
    return this.exited;
  }

  kill(): void {
    if (this.running) this.child.kill('SIGKILL');
  }
}

// ---------------------------------------------------------------------------------------------------------------
// What XSOAR holds

interface Observation {
  incidents: StoredIncident[];
  /** Distinct dbotMirrorIds among the incidents. */
  forwarded: number;
  /** Incidents beyond the first for a session. */
  duplicates: number;
  /** Incidents for sessions outside the expected set (or without a dbotMirrorId). */
  unexpected: number;
  /** Every expected session has an incident and nothing else does. */
  complete: boolean;
}

function observe(xsoar: XsoarSimulator, expected: ReadonlySet<string>): Observation {
  const incidents = xsoar.incidents();
  const ids = new Set<string>();
  let duplicates = 0;
  let unexpected = 0;
  for (const incident of incidents) {
    const id = incident.dbotMirrorId;
    if (id === undefined) {
      unexpected += 1;
      continue;
    }
    if (ids.has(id)) duplicates += 1;
    else ids.add(id);
    if (!expected.has(id)) unexpected += 1;
  }
  return { incidents, forwarded: ids.size, duplicates, unexpected, complete: ids.size === expected.size && unexpected === 0 };
}

function countBy<T>(items: readonly T[], key: (item: T) => string | number): Map<string | number, number> {
  const counts = new Map<string | number, number>();
  for (const item of items) counts.set(key(item), (counts.get(key(item)) ?? 0) + 1);
  return counts;
}

function summaryTable(incidents: readonly StoredIncident[]): string[] {
  const lines: string[] = [];
  const bySeverity = [...countBy(incidents, (i) => i.severity)].sort((a, b) => Number(b[0]) - Number(a[0]));
  lines.push('XSOAR incidents by severity');
  for (const [severity, count] of bySeverity) {
    const name = `${severity} ${XSOAR_SEVERITY_NAMES.get(Number(severity)) ?? '?'}`;
    lines.push(`  ${name.padEnd(34)}${String(count).padStart(6)}`);
  }
  const actors = [...countBy(incidents, (i) => String(i.CustomFields.code42username ?? '(none)'))].sort(
    (a, b) => b[1] - a[1] || String(a[0]).localeCompare(String(b[0])),
  );
  lines.push('', `Top actors (code42username, ${actors.length} in all)`);
  for (const [actor, count] of actors.slice(0, TOP_ACTORS)) lines.push(`  ${String(actor).padEnd(34)}${String(count).padStart(6)}`);
  return lines;
}

// ---------------------------------------------------------------------------------------------------------------
// The demo

interface Resources {
  redis?: RedisHandle;
  connection?: RedisConnection;
  queue?: Queue;
  prefix?: string;
  code42?: Code42Simulator;
  xsoar?: XsoarSimulator;
  daemon?: DaemonProcess;
  logDir?: string;
}

/** Deletes every key under `prefix:` (SCAN, never KEYS: the Redis may be shared). */
async function deletePrefix(redis: RedisConnection, prefix: string): Promise<number> {
  let cursor = '0';
  let deleted = 0;
  do {
    const [next, keys] = await redis.scan(cursor, 'MATCH', `${prefix}:*`, 'COUNT', 1000);
    cursor = next;
    if (keys.length > 0) deleted += await redis.del(...keys);
  } while (cursor !== '0');
  return deleted;
}

class Demo {
  private readonly out = new Progress();
  private readonly res: Resources = {};
  private cleaning: Promise<void> | undefined;
  /** Set by SIGINT/SIGTERM: `run` returns at its next check and the caller cleans up. */
  signal: NodeJS.Signals | undefined;
  private signalAt: number | undefined;

  private get interrupted(): boolean {
    return this.signal !== undefined;
  }

  async run(): Promise<number> {
    const demoStartedAt = Date.now();
    const sessions = intEnv('DEMO_SESSIONS', SIM_DEFAULTS.sessions, 1, 100_000);
    const seed = intEnv('DEMO_SEED', SIM_DEFAULTS.seed, 0, 2 ** 32 - 1);
    const timeoutMs = intEnv('DEMO_TIMEOUT', 120, 5, 3_600) * 1000;
    const say = (line: string): void => this.out.say(line);

    if (!existsSync(MAIN_JS)) {
      say(`${MAIN_JS} not found: build first (npm run build; npm run demo does it for you)`);
      return 1;
    }
    say('code42-xsoar-forwarder demo');

    // Redis, and a prefix of our own so nothing else in that Redis is touched.
    const redis = await ensureRedis({ log: (line) => say(`redis: ${line}`) });
    this.res.redis = redis;
    if (this.interrupted) return 130;
    const prefix = `demo-${Date.now()}`;
    this.res.prefix = prefix;
    const connection = createRedis({ url: redis.url, name: 'c42x-demo', role: 'command' });
    connection.on('error', () => {}); // reported where a command fails
    this.res.connection = connection;
    const queue = new Queue('forward', { connection, prefix });
    queue.on('error', () => {});
    this.res.queue = queue;
    say(`redis       ${redis.started ? 'private redis-server at ' : 'reusing '}${maskRedisUrl(redis.url)}, keys under ${prefix}:* (removed at the end)`);

    // Simulators.
    const code42 = new Code42Simulator({ clientId: SIM_DEFAULTS.code42ClientId, clientSecret: SIM_DEFAULTS.code42ClientSecret, host: '127.0.0.1' });
    this.res.code42 = code42;
    code42.loadTenant(demoTenant({ sessions, seed }));
    const xsoar = new XsoarSimulator({ apiKey: SIM_DEFAULTS.xsoarApiKey, host: '127.0.0.1' });
    this.res.xsoar = xsoar;
    await Promise.all([code42.start(), xsoar.start()]);
    if (this.interrupted) return 130;

    const expected = new Set<string>();
    for (const id of code42.sessionIds()) {
      const s = code42.getSession(id);
      const state = s && latestState(s);
      if (s && s.triggeredAlerts.length > 0 && FORWARDED_SEVERITIES.has(maxSeverity(s)) && state !== undefined && FORWARDED_STATES.has(state)) {
        expected.add(id);
      }
    }
    say(`code42      ${code42.url}  ${sessions} sessions with alerts (seed ${seed})`);
    say(`xsoar       ${xsoar.url}`);
    say(`expected    ${expected.size} of ${sessions} sessions (severity low to critical, latest state OPEN or OPEN_NEW_DATA)`);
    say(
      `note        the Code42 simulator is unthrottled and the daemon gets CODE42_RATE_LIMIT=${DEMO_RATE_LIMIT}; ` +
        'the real Incydr API allows about 120 requests/min, so a real tenant this size takes minutes',
    );

    // The daemon.
    const logDir = mkdtempSync(join(tmpdir(), 'c42x-demo-'));
    this.res.logDir = logDir;
    const httpPort = await freePort();
    if (this.interrupted) return 130;
    const daemon = new DaemonProcess(
      {
        CODE42_API_URL: code42.url,
        CODE42_CLIENT_ID: SIM_DEFAULTS.code42ClientId,
        CODE42_CLIENT_SECRET: SIM_DEFAULTS.code42ClientSecret,
        CODE42_RATE_LIMIT: DEMO_RATE_LIMIT,
        XSOAR_URL: xsoar.url,
        XSOAR_API_KEY: SIM_DEFAULTS.xsoarApiKey,
        REDIS_URL: redis.url,
        QUEUE_PREFIX: prefix,
        POLL_INTERVAL: '1s',
        HTTP_PORT: String(httpPort),
        HTTP_HOST: '127.0.0.1',
        LOG_LEVEL: 'warn',
      },
      join(logDir, 'daemon.log'),
    );
    this.res.daemon = daemon;
    const startedAt = Date.now();
    say(`daemon      node dist/main.js run (pid ${daemon.pid ?? '?'}), metrics http://127.0.0.1:${httpPort}/metrics`);
    say('daemon log  a temp file, kept at the end only when the daemon logged something (LOG_LEVEL=warn)');
    say('');

    // Progress until done, timeout, an early daemon exit or a signal.
    let seen: Observation = observe(xsoar, expected);
    let failures = 0;
    let completeSince: number | undefined;
    let lastIncidentAt = startedAt;
    const line = (now: number): string => {
      // Once complete, the rate is measured up to the last incident (the settle wait is not forwarding time).
      const rateUntil = seen.complete ? lastIncidentAt : now;
      const rate = seen.forwarded / Math.max(0.001, (rateUntil - startedAt) / 1000);
      const extra = (seen.duplicates > 0 ? ` | duplicates ${seen.duplicates}` : '') + (seen.unexpected > 0 ? ` | unexpected ${seen.unexpected}` : '');
      return `forwarded ${seen.forwarded}/${expected.size} | ${rate.toFixed(1)} incidents/s | failures ${failures}${extra} | elapsed ${seconds(now - startedAt)}`;
    };
    for (;;) {
      if (this.interrupted) return 130;
      const now = Date.now();
      const previous = seen.forwarded;
      seen = observe(xsoar, expected);
      if (seen.forwarded !== previous) lastIncidentAt = now;
      failures = await queue.getJobCounts('failed').then(
        (counts) => counts.failed ?? 0,
        () => failures,
      );
      if (!daemon.running) {
        const exit = await daemon.exited;
        this.out.finish(line(now));
        say(`the daemon exited early (code ${exit.code ?? '-'}, signal ${exit.signal ?? '-'}); last lines of its log:`);
        say(tail(daemon.logPath, 30));
        return 1;
      }
      if (seen.complete) completeSince ??= now;
      else completeSince = undefined;
      if (completeSince !== undefined && now - completeSince >= SETTLE_MS) {
        this.out.finish(line(now));
        break;
      }
      if (now - startedAt > timeoutMs) {
        this.out.finish(line(now));
        say(
          `timed out after ${seconds(timeoutMs)}: ${seen.forwarded} of ${expected.size} expected sessions in XSOAR` +
            `, ${seen.duplicates} duplicate(s), ${seen.unexpected} unexpected, ${failures} failed job(s)`,
        );
        return 1;
      }
      this.out.update(line(now));
      await sleep(TICK_MS);
    }

    // Done: stop the daemon the way an orchestrator would, then report.
    const stopAt = Date.now();
    const exit = await daemon.stop(STOP_GRACE_MS);
    const stopTook = Date.now() - stopAt;
    if (this.interrupted) return 130;
    seen = observe(xsoar, expected);
    const c42 = code42.stats();
    say(`daemon      stopped by SIGTERM in ${seconds(stopTook)} (exit code ${exit.code ?? '-'}${exit.signal ? `, signal ${exit.signal}` : ''})`);
    say('');
    for (const row of summaryTable(seen.incidents)) say(row);
    say('');
    say(`total       ${seen.incidents.length} incidents for ${seen.forwarded} sessions (expected ${expected.size}; duplicates ${seen.duplicates}, unexpected ${seen.unexpected})`);
    say(`tenant      ${sessions} sessions in Code42, ${sessions - expected.size} left out by severity or state`);
    say(`requests    Code42 ${c42.total}${c42.rateLimited > 0 ? ` (${c42.rateLimited} answered 429)` : ''}, XSOAR ${xsoar.stats().creates} creates`);
    say(
      `duration    ${seconds(lastIncidentAt - startedAt)} from daemon start to the last incident ` +
        `(${(seen.forwarded / Math.max(0.001, (lastIncidentAt - startedAt) / 1000)).toFixed(1)} incidents/s), ${seconds(Date.now() - demoStartedAt)} since the demo started`,
    );

    const shown = pickIncident(seen.incidents);
    if (shown) {
      say('');
      for (const row of analystView(shown, (n) => XSOAR_SEVERITY_NAMES.get(n) ?? '?')) say(row);
    }

    const ok = exit.code === 0 && seen.complete && seen.duplicates === 0;
    if (exit.code !== 0) {
      say('the daemon did not exit 0 after SIGTERM; last lines of its log:');
      say(tail(daemon.logPath, 30));
    } else if (!ok) {
      say('XSOAR does not hold exactly one incident per expected session');
    }
    return ok ? 0 : 1;
  }

  /** Undoes everything `run` set up, in reverse order. Safe to call more than once and after any failure. */
  cleanup(): Promise<void> {
    this.cleaning ??= this.doCleanup();
    return this.cleaning;
  }

  private async doCleanup(): Promise<void> {
    const { daemon, queue, connection, prefix, code42, xsoar, redis, logDir } = this.res;
    const notes: string[] = [];
    // A private redis-server shares the terminal, so a Ctrl-C ends it too; without Redis the daemon cannot finish
    // a graceful shutdown, and there is nothing left to save.
    const redisUp = redis ? await ping(new URL(redis.url).hostname, Number(new URL(redis.url).port || 6379), 500) : false;
    if (daemon?.running) await daemon.stop(!this.interrupted ? STOP_GRACE_MS : redisUp ? 10_000 : 1_000);
    await queue?.close().catch(() => {});
    if (connection && prefix) {
      try {
        notes.push(`${await deletePrefix(connection, prefix)} keys under ${prefix}:* deleted`);
      } catch (err) {
        // A private redis-server ended by the same Ctrl-C (it shares the terminal) took the keys with it.
        notes.push(redis?.started ? 'the private redis-server was already gone, keys with it' : `could not delete the keys under ${prefix}:* (${String(err)})`);
      }
    }
    if (connection) await closeRedis(connection);
    if (code42 || xsoar) {
      await Promise.all([code42?.close(), xsoar?.close()]);
      notes.push('simulators closed');
    }
    if (redis?.started) {
      // stop() waits for the server's exit event, which never comes when the server has already exited.
      const stopped = await within(redis.stop().then(() => true), redisUp ? 5_000 : 100);
      if (stopped) notes.push('private redis-server stopped');
      else notes.push(`the private redis-server ${redisUp ? 'did not confirm its exit' : 'had already exited'} (its c42x-redis-* temp dir may remain)`);
    }
    if (daemon && logDir) {
      // Kept only when it has something to say.
      if (readLog(daemon.logPath) === '') {
        rmSync(logDir, { recursive: true, force: true });
        notes.push('the daemon log was empty and is removed');
      } else {
        notes.push(`the daemon log is kept at ${daemon.logPath}`);
      }
    }
    if (notes.length > 0) this.out.say(`cleanup     ${notes.join('; ')}`);
  }

  /**
   * Ctrl-C / SIGTERM: `run` stops at its next check and the usual cleanup follows. Another signal a second or
   * more later exits at once; one sooner is the same Ctrl-C relayed by a wrapper (npm, tsx) and is ignored.
   */
  onSignal(signal: NodeJS.Signals): void {
    if (this.signalAt !== undefined) {
      if (Date.now() - this.signalAt < 1_000) return;
      this.res.daemon?.kill();
      process.exit(128 + (osConstants.signals[signal] ?? 2));
    }
    this.signal = signal;
    this.signalAt = Date.now();
    this.out.say(`${signal}: stopping the daemon and cleaning up (again to force)`);
  }
}

const demo = new Demo();
for (const signal of ['SIGINT', 'SIGTERM', 'SIGHUP'] as const) process.on(signal, (s) => demo.onSignal(s));

let code = 1;
try {
  code = await demo.run();
} catch (err) {
  process.stdout.write(`\ndemo failed: ${err instanceof Error ? err.message : String(err)}\n`);
  code = 1;
}
try {
  await demo.cleanup();
} catch (err) {
  process.stdout.write(`cleanup failed: ${err instanceof Error ? err.message : String(err)}\n`);
  code = 1;
}
if (demo.signal) code = 128 + (osConstants.signals[demo.signal] ?? 2);
// Everything is closed by now; exit explicitly so a stray handle cannot keep the demo alive.
process.exit(code);
