import { spawn, type ChildProcess } from 'node:child_process';
import { mkdtempSync, readdirSync, rmSync } from 'node:fs';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Redis } from 'ioredis';
import { onCleanup, trackChild } from './cleanup.js';

async function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const srv = createServer();
    srv.listen(0, '127.0.0.1', () => {
      const address = srv.address();
      srv.close(() => (address && typeof address === 'object' ? resolve(address.port) : reject(new Error('no port'))));
    });
  });
}

async function answers(port: number, password?: string): Promise<boolean> {
  const r = new Redis({ port, host: '127.0.0.1', lazyConnect: true, maxRetriesPerRequest: 0, retryStrategy: () => null, ...(password ? { password } : {}) });
  r.on('error', () => undefined);
  try {
    await r.connect();
    return (await r.ping()) === 'PONG';
  } catch {
    return false;
  } finally {
    r.disconnect();
  }
}

/**
 * A private redis-server (AOF on, in a temp dir) that a test may stop and start again on the same
 * port and data, as an operator's Redis restart would.
 */
export class RedisProcess {
  private child: ChildProcess | undefined;
  private readonly dir = mkdtempSync(join(tmpdir(), 'c42x-redis-'));
  port = 0;

  /** Registered before anything starts: the server and its temp dir go even when a test fails. */
  private readonly unregister = onCleanup(() => this.destroy());

  /** `password` turns on requirepass; the readiness probe authenticates with it. */
  constructor(private readonly password?: string) {}

  get url(): string {
    return this.password ? `redis://:${encodeURIComponent(this.password)}@127.0.0.1:${this.port}` : `redis://127.0.0.1:${this.port}`;
  }

  async start(extraArgs: string[] = []): Promise<void> {
    if (this.port === 0) this.port = await freePort();
    this.child = spawn(
      'redis-server',
      [
        '--port', String(this.port), '--bind', '127.0.0.1', '--dir', this.dir,
        '--appendonly', 'yes', '--appendfsync', 'everysec', '--save', '',
        ...(this.password ? ['--requirepass', this.password] : []),
        ...extraArgs,
      ],
      { stdio: 'ignore' },
    );
    trackChild(this.child);
    for (let i = 0; i < 200; i++) {
      if (await answers(this.port, this.password)) return;
      await new Promise((r) => setTimeout(r, 25));
    }
    await this.stop('SIGKILL');
    throw new Error(`redis-server did not start on ${this.port}`);
  }

  /** SIGTERM: Redis flushes its AOF and exits, like a clean restart. */
  async stop(signal: NodeJS.Signals = 'SIGTERM'): Promise<void> {
    const child = this.child;
    if (!child || child.exitCode !== null) return;
    const exited = new Promise((r) => child.once('exit', r));
    child.kill(signal);
    await exited;
    this.child = undefined;
  }

  /** Stops, deletes every data file, starts again on the same port: a restart that lost everything (no AOF). */
  async restartEmpty(): Promise<void> {
    await this.stop('SIGKILL');
    for (const entry of readdirSync(this.dir)) rmSync(join(this.dir, entry), { recursive: true, force: true });
    await this.start();
  }

  async destroy(): Promise<void> {
    this.unregister();
    await this.stop('SIGKILL');
    rmSync(this.dir, { recursive: true, force: true });
  }
}
