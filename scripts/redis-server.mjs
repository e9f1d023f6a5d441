// Finds a Redis for tests and the demo: the one REDIS_URL names (or 127.0.0.1:6379) when it answers,
// else a private redis-server on a free port in a temp dir (installed with apt-get when missing and
// allowed). Plain Node, no dependencies: it runs before anything is built.
import { spawn, spawnSync } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { createConnection, createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

export function ping(host, port, timeoutMs = 1000) {
  return new Promise((resolve) => {
    const socket = createConnection({ host, port });
    const done = (ok) => {
      socket.destroy();
      resolve(ok);
    };
    socket.setTimeout(timeoutMs, () => done(false));
    socket.on('error', () => done(false));
    socket.on('connect', () => socket.write('PING\r\n'));
    socket.on('data', (d) => done(d.toString().startsWith('+PONG')));
  });
}

function freePort() {
  return new Promise((resolve, reject) => {
    const srv = createServer();
    srv.listen(0, '127.0.0.1', () => {
      const { port } = srv.address();
      srv.close(() => resolve(port));
    });
    srv.on('error', reject);
  });
}

function hasBinary(name) {
  return spawnSync('sh', ['-c', `command -v ${name}`], { stdio: 'ignore' }).status === 0;
}

/** Installs redis-server with apt-get when it is missing and we may; says so in one line. */
export function installRedisIfMissing(log = (line) => process.stderr.write(`${line}\n`)) {
  if (hasBinary('redis-server')) return true;
  const root = typeof process.getuid === 'function' && process.getuid() === 0;
  if (!root || !hasBinary('apt-get')) {
    log('redis-server is not installed: install it (Debian/Ubuntu: sudo apt-get install redis-server; macOS: brew install redis) or set REDIS_URL to a running Redis');
    return false;
  }
  log('redis-server is not installed: installing it with apt-get (Debian package redis-server)');
  const env = { ...process.env, DEBIAN_FRONTEND: 'noninteractive' };
  const update = spawnSync('apt-get', ['update', '-qq'], { stdio: 'ignore', env });
  const install = spawnSync('apt-get', ['install', '-y', '-qq', 'redis-server'], { stdio: 'ignore', env });
  return update.status === 0 && install.status === 0 && hasBinary('redis-server');
}

/**
 * Resolves { url, stop } for a Redis that answers. `stop()` ends a server this function started
 * (and does nothing for one that was already running).
 */
export async function ensureRedis({ log = (line) => process.stderr.write(`${line}\n`) } = {}) {
  const wanted = new URL(process.env.REDIS_URL ?? 'redis://127.0.0.1:6379');
  const host = wanted.hostname || '127.0.0.1';
  const port = Number(wanted.port || 6379);
  if (await ping(host, port)) return { url: wanted.toString().replace(/\/$/, ''), started: false, stop: async () => {} };
  if (!installRedisIfMissing(log)) throw new Error('no Redis server available');
  const freeP = await freePort();
  const dir = mkdtempSync(join(tmpdir(), 'c42x-redis-'));
  // Own process group: a Ctrl-C in the terminal reaches the caller, which stops Redis in order.
  const child = spawn('redis-server', ['--port', String(freeP), '--bind', '127.0.0.1', '--dir', dir, '--save', '', '--appendonly', 'no'], {
    stdio: 'ignore',
    detached: true,
  });
  const exited = new Promise((r) => child.once('exit', r));
  for (let i = 0; i < 100 && !(await ping('127.0.0.1', freeP, 200)); i++) await new Promise((r) => setTimeout(r, 50));
  if (!(await ping('127.0.0.1', freeP))) {
    child.kill('SIGKILL');
    throw new Error('redis-server did not start');
  }
  log(`started redis-server on 127.0.0.1:${freeP}`);
  return {
    url: `redis://127.0.0.1:${freeP}`,
    started: true,
    stop: async () => {
      if (child.exitCode === null && child.signalCode === null) child.kill('SIGTERM');
      await exited;
      rmSync(dir, { recursive: true, force: true });
    },
  };
}
