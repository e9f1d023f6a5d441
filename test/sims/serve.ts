/**
 * Runs the Code42 and XSOAR simulators as a standalone process, for the docker compose demo and manual testing:
 *
 *   npx tsx test/sims/serve.ts
 *
 * Environment (all optional):
 *   SIM                    code42 | xsoar | both                                   (default both)
 *   HOST                   address both simulators listen on; 0.0.0.0 in a container (default 127.0.0.1)
 *   CODE42_PORT            port of the Code42 Incydr simulator                     (default 4242)
 *   XSOAR_PORT             port of the XSOAR simulator                             (default 4243)
 *   SESSIONS               sessions with alerts in the Code42 tenant at start      (default 300)
 *   SEED                   tenant seed: same seed, same actors, rules and sessions (default 1)
 *   CODE42_CLIENT_ID       API client the Code42 simulator accepts                 (default key-sim-client)
 *   CODE42_CLIENT_SECRET                                                           (default sim-client-secret)
 *   XSOAR_API_KEY          API key the XSOAR simulator accepts                     (default xsoar-sim-api-key-0123456789)
 *   XSOAR_API_KEY_ID       when set, the XSOAR simulator behaves as XSOAR 8 and requires this key ID
 *   TRICKLE_PER_SEC        add this many new sessions per second while running, fractions allowed (default 0)
 *   XSOAR_PESSIMISTIC      1: every real-server reading below at its worst (no create id, dbotMirrorId not kept,
 *                          strict query language, 3 s index lag); the single switches override it
 *   XSOAR_CREATE_ANSWER    incident | noId | null | empty: what a successful create answers (default incident)
 *   XSOAR_KEEP_MIRROR_ID   0: the server does not keep a client-supplied dbotMirrorId (default 1)
 *   XSOAR_STRICT_QUERY     1: unknown query fields match nothing, unparsable queries answer 400 (default 0)
 *   XSOAR_INDEX_LAG_MS     search sees an incident only this long after it was stored (default 0)
 *   XSOAR_PREPROCESS_DROP  fraction of creates a pre-process rule drops: 2xx, nothing stored (default 0)
 *
 * Prints the URLs (and the env that points the forwarder at them), then runs until SIGINT or SIGTERM.
 * The defaults are the ones `npm run demo` uses, which imports `SIM_DEFAULTS` and `demoTenant` from here.
 */
import { realpathSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { Code42Simulator, generateTenant, type GeneratedTenant } from './code42/index.js';
import { XsoarSimulator, type XsoarSimulatorOptions } from './xsoar/index.js';

export const SIM_DEFAULTS = {
  code42ClientId: 'key-sim-client',
  code42ClientSecret: 'sim-client-secret',
  xsoarApiKey: 'xsoar-sim-api-key-0123456789',
  code42Port: 4242,
  xsoarPort: 4243,
  sessions: 300,
  seed: 1,
} as const;

const MINUTE = 60_000;

/**
 * The demo tenant: sessions that began in the hour before `now`, a mix of severities (a few with no risk,
 * which the forwarder filters out) and of states (mostly open; some in progress or closed, filtered out too),
 * up to five file events each, and no `actorName`/`ruleName` so the forwarder looks the names up.
 */
export function demoTenant(opts: { sessions: number; seed: number; now?: number }): GeneratedTenant {
  const now = opts.now ?? Date.now();
  return generateTenant({
    sessions: opts.sessions,
    seed: opts.seed,
    withNames: false,
    beginFrom: now - 60 * MINUTE,
    beginTo: now - MINUTE,
    severityWeights: [8, 25, 30, 25, 12],
  });
}

/**
 * `count` fresh sessions that began in the last minute, drawn with their own seed but pointed at the actors
 * and rules of `base` (matched by position), so the simulator's actor and rule lists do not grow.
 */
export function trickleSessions(base: GeneratedTenant, opts: { count: number; seed: number; batch: number }): GeneratedTenant['sessions'] {
  const now = Date.now();
  const batch = generateTenant({
    sessions: opts.count,
    seed: opts.seed,
    actors: base.actors.length,
    rules: base.rules.length + base.deletedRuleIds.length,
    withNames: false,
    beginFrom: now - MINUTE,
    beginTo: now,
    severityWeights: [8, 25, 30, 25, 12],
    idPrefix: `live${opts.batch}`,
  });
  const rename = new Map<string, string>();
  batch.actors.forEach((actor, i) => {
    const target = base.actors[i];
    if (!target) return;
    rename.set(actor.actorId, target.actorId);
    rename.set(actor.name, target.name);
  });
  const baseRuleIds = [...base.rules.map((r) => r.id), ...base.deletedRuleIds];
  batch.rules.forEach((rule, i) => {
    const target = baseRuleIds[i];
    if (target !== undefined) rename.set(rule.id, target);
  });
  // Exact-value replacement through the whole session and its events (ids and e-mail addresses only).
  const text = JSON.stringify(batch.sessions);
  return JSON.parse(text, (_key, value: unknown) => (typeof value === 'string' ? rename.get(value) ?? value : value)) as GeneratedTenant['sessions'];
}

// ---------------------------------------------------------------------------------------------------------------
// Standalone process

type SimChoice = 'code42' | 'xsoar' | 'both';

class EnvError extends Error {}

function envString(name: string, fallback: string): string {
  const value = process.env[name];
  return value === undefined || value === '' ? fallback : value;
}

function envNumber(name: string, fallback: number, { min, max, integer }: { min: number; max: number; integer: boolean }): number {
  const raw = process.env[name];
  if (raw === undefined || raw.trim() === '') return fallback;
  const value = Number(raw);
  if (!Number.isFinite(value) || (integer && !Number.isInteger(value)) || value < min || value > max) {
    throw new EnvError(`${name}=${raw}: expected ${integer ? 'an integer' : 'a number'} from ${min} to ${max}`);
  }
  return value;
}

function envSim(): SimChoice {
  const value = envString('SIM', 'both').toLowerCase();
  if (value === 'code42' || value === 'xsoar' || value === 'both') return value;
  throw new EnvError(`SIM=${value}: expected code42, xsoar or both`);
}

const CREATE_ANSWERS = ['incident', 'noId', 'null', 'empty'] as const;

/** The switchable real-server behaviours of the XSOAR simulator, from the environment. */
export function xsoarModesFromEnv(): Partial<XsoarSimulatorOptions> {
  const pessimistic = envString('XSOAR_PESSIMISTIC', '0') === '1';
  const answer = envString('XSOAR_CREATE_ANSWER', pessimistic ? 'noId' : 'incident');
  if (!(CREATE_ANSWERS as readonly string[]).includes(answer)) throw new EnvError(`XSOAR_CREATE_ANSWER=${answer}: expected ${CREATE_ANSWERS.join(', ')}`);
  return {
    createAnswer: answer as (typeof CREATE_ANSWERS)[number],
    keepDbotMirrorId: envString('XSOAR_KEEP_MIRROR_ID', pessimistic ? '0' : '1') !== '0',
    strictQuery: envString('XSOAR_STRICT_QUERY', pessimistic ? '1' : '0') === '1',
    indexLagMs: envNumber('XSOAR_INDEX_LAG_MS', pessimistic ? 3_000 : 0, { min: 0, max: 600_000, integer: true }),
    preProcessDropRate: envNumber('XSOAR_PREPROCESS_DROP', 0, { min: 0, max: 1, integer: false }),
  };
}

async function serve(): Promise<void> {
  const sim = envSim();
  const host = envString('HOST', '127.0.0.1');
  const code42Port = envNumber('CODE42_PORT', SIM_DEFAULTS.code42Port, { min: 0, max: 65_535, integer: true });
  const xsoarPort = envNumber('XSOAR_PORT', SIM_DEFAULTS.xsoarPort, { min: 0, max: 65_535, integer: true });
  const sessions = envNumber('SESSIONS', SIM_DEFAULTS.sessions, { min: 0, max: 1_000_000, integer: true });
  const seed = envNumber('SEED', SIM_DEFAULTS.seed, { min: 0, max: 2 ** 32 - 1, integer: true });
  const tricklePerSec = envNumber('TRICKLE_PER_SEC', 0, { min: 0, max: 10_000, integer: false });
  const clientId = envString('CODE42_CLIENT_ID', SIM_DEFAULTS.code42ClientId);
  const clientSecret = envString('CODE42_CLIENT_SECRET', SIM_DEFAULTS.code42ClientSecret);
  const apiKey = envString('XSOAR_API_KEY', SIM_DEFAULTS.xsoarApiKey);
  const apiKeyId = process.env.XSOAR_API_KEY_ID || undefined;

  let code42: Code42Simulator | undefined;
  let xsoar: XsoarSimulator | undefined;
  let trickle: NodeJS.Timeout | undefined;

  if (sim !== 'xsoar') {
    code42 = new Code42Simulator({ clientId, clientSecret, host, port: code42Port });
    const tenant = demoTenant({ sessions, seed });
    code42.loadTenant(tenant);
    await code42.start();
    console.log(`code42 simulator  ${code42.url}  (${sessions} sessions, ${tenant.actors.length} actors, seed ${seed})`);
    if (tricklePerSec > 0) {
      const sims = code42;
      let batch = 0;
      let owed = 0;
      let added = 0;
      trickle = setInterval(() => {
        owed += tricklePerSec;
        const count = Math.floor(owed);
        if (count === 0) return;
        owed -= count;
        batch += 1;
        // A distinct seed per batch so new sessions differ from each other and from the initial tenant.
        for (const s of trickleSessions(tenant, { count, seed: seed * 100_003 + batch, batch })) {
          sims.addSession(s.session, { events: s.events });
        }
        added += count;
        if (batch % 60 === 0) console.log(`code42 simulator: ${added} sessions added since start`);
      }, 1_000);
      console.log(`code42 simulator: adding ${tricklePerSec} new session(s) per second`);
    }
  }
  if (sim !== 'code42') {
    xsoar = new XsoarSimulator({ ...(apiKeyId === undefined ? { apiKey, host, port: xsoarPort } : { apiKey, apiKeyId, host, port: xsoarPort }), ...xsoarModesFromEnv() });
    await xsoar.start();
    console.log(`xsoar simulator   ${xsoar.url}  (XSOAR ${apiKeyId === undefined ? '6' : '8'})`);
  }

  const env: string[] = [];
  if (code42) env.push(`CODE42_API_URL=${code42.url}`, `CODE42_CLIENT_ID=${clientId}`, `CODE42_CLIENT_SECRET=${clientSecret}`);
  if (xsoar) env.push(`XSOAR_URL=${xsoar.url}`, `XSOAR_API_KEY=${apiKey}`);
  if (xsoar && apiKeyId !== undefined) env.push(`XSOAR_API_KEY_ID=${apiKeyId}`);
  console.log(`forwarder env: ${env.join(' ')}`);
  console.log('running until SIGINT or SIGTERM');

  let stopping = false;
  const stop = (signal: NodeJS.Signals): void => {
    if (stopping) process.exit(1);
    stopping = true;
    if (trickle) clearInterval(trickle);
    console.log(`${signal}: closing the simulators`);
    Promise.all([code42?.close(), xsoar?.close()]).then(
      () => process.exit(0),
      (err: unknown) => {
        console.error(`closing failed: ${String(err)}`);
        process.exit(1);
      },
    );
  };
  process.on('SIGINT', stop);
  process.on('SIGTERM', stop);
}

function invokedDirectly(): boolean {
  const entry = process.argv[1];
  if (entry === undefined) return false;
  try {
    return realpathSync(entry) === realpathSync(fileURLToPath(import.meta.url));
  } catch {
    return false;
  }
}

if (invokedDirectly()) {
  serve().catch((err: unknown) => {
    console.error(err instanceof EnvError ? err.message : err);
    process.exit(err instanceof EnvError ? 2 : 1);
  });
}
