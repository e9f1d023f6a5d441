// Runs a command with REDIS_URL pointing at a Redis that answers (see redis-server.mjs):
//   node scripts/with-redis.mjs <command> [args...]
// The command runs in its own process group: when it ends (or overruns RUN_TIMEOUT, default 30 min),
// whatever it left behind (a daemon, a redis-server of a test that failed) is killed with it, and the
// exit code says whether it passed. A hung test can cost at most that long, never the whole CI budget.
import { spawn } from 'node:child_process';
import { ensureRedis } from './redis-server.mjs';

const [command, ...args] = process.argv.slice(2);
if (!command) {
  process.stderr.write('usage: node scripts/with-redis.mjs <command> [args...]\n');
  process.exit(2);
}
const runTimeoutMs = Number(process.env.RUN_TIMEOUT_MS ?? 30 * 60_000);
let redis;
try {
  redis = await ensureRedis();
} catch (err) {
  process.stderr.write(`${err.message}\n`);
  process.exit(1);
}
const child = spawn(command, args, { stdio: 'inherit', env: { ...process.env, REDIS_URL: redis.url }, shell: false, detached: true });

/** Signals the command's whole process group (the command and everything it started). */
function signalGroup(signal) {
  try {
    process.kill(-child.pid, signal);
    return true;
  } catch {
    return false; // the group is gone
  }
}

let timedOut = false;
const watchdog = setTimeout(() => {
  timedOut = true;
  process.stderr.write(`with-redis: ${command} ran longer than ${runTimeoutMs} ms (RUN_TIMEOUT_MS); stopping it\n`);
  signalGroup('SIGTERM');
  setTimeout(() => signalGroup('SIGKILL'), 5_000).unref();
}, runTimeoutMs);
watchdog.unref();

const forward = (signal) => signalGroup(signal);
process.on('SIGINT', forward);
process.on('SIGTERM', forward);
child.on('exit', async (code, signal) => {
  clearTimeout(watchdog);
  // Anything still in the group is a leftover of the run (a daemon or redis-server a failed test left).
  signalGroup('SIGKILL');
  await redis.stop();
  process.exit(timedOut ? 1 : (code ?? (signal ? 1 : 0)));
});
