// Runs a command with REDIS_URL pointing at a Redis that answers (see redis-server.mjs):
//   node scripts/with-redis.mjs <command> [args...]
import { spawn } from 'node:child_process';
import { ensureRedis } from './redis-server.mjs';

const [command, ...args] = process.argv.slice(2);
if (!command) {
  process.stderr.write('usage: node scripts/with-redis.mjs <command> [args...]\n');
  process.exit(2);
}
let redis;
try {
  redis = await ensureRedis();
} catch (err) {
  process.stderr.write(`${err.message}\n`);
  process.exit(1);
}
const child = spawn(command, args, { stdio: 'inherit', env: { ...process.env, REDIS_URL: redis.url }, shell: false });
const forward = (signal) => child.kill(signal);
process.on('SIGINT', forward);
process.on('SIGTERM', forward);
child.on('exit', async (code, signal) => {
  await redis.stop();
  process.exit(code ?? (signal ? 1 : 0));
});
