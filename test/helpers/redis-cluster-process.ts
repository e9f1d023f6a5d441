import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { mkdirSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Redis } from 'ioredis';
import { onCleanup, trackChild } from './cleanup.js';
import { freePort } from './ports.js';
import { waitFor } from './wait.js';

interface ClusterNode {
  port: number;
  busPort: number;
  dir: string;
  child?: ChildProcess;
}

async function ping(port: number): Promise<string | undefined> {
  const r = new Redis({ port, host: '127.0.0.1', lazyConnect: true, maxRetriesPerRequest: 0, retryStrategy: () => null });
  r.on('error', () => undefined);
  try {
    await r.connect();
    return String(await r.cluster('INFO'));
  } catch {
    return undefined;
  } finally {
    r.disconnect();
  }
}

/**
 * A private Redis Cluster of three masters and no replicas (AOF on, each node in its own temp dir),
 * made with `redis-server --cluster-enabled yes` and `redis-cli --cluster create`. A test may kill a
 * master and start it again on the same port, data and nodes.conf, as a managed service's node restart.
 */
export class RedisClusterProcess {
  readonly nodes: ClusterNode[] = [];
  private readonly dir = mkdtempSync(join(tmpdir(), 'c42x-cluster-'));
  /** Registered before anything starts: the servers and their temp dirs go even when a test fails. */
  private readonly unregister = onCleanup(() => this.destroy());

  get url(): string {
    return `redis+cluster://${this.nodes.map((n) => `127.0.0.1:${n.port}`).join(',')}`;
  }

  async start(masters = 3): Promise<void> {
    for (let i = 0; i < masters; i++) {
      const dir = join(this.dir, `node-${i}`);
      mkdirSync(dir);
      this.nodes.push({ port: await freePort(), busPort: await freePort(), dir });
    }
    for (const node of this.nodes) await this.startNode(node);
    const created = spawnSync(
      'redis-cli',
      ['--cluster', 'create', ...this.nodes.map((n) => `127.0.0.1:${n.port}`), '--cluster-replicas', '0', '--cluster-yes'],
      { encoding: 'utf8', timeout: 30_000 },
    );
    if (created.status !== 0) throw new Error(`redis-cli --cluster create failed: ${created.stdout} ${created.stderr}`);
    await this.waitHealthy();
  }

  /** Waits until every node reports cluster_state:ok. */
  async waitHealthy(timeoutMs = 20_000): Promise<void> {
    await waitFor(async () => (await Promise.all(this.nodes.map((n) => ping(n.port)))).every((info) => info?.includes('cluster_state:ok')), {
      timeoutMs,
      intervalMs: 50,
      what: 'cluster_state:ok on every node',
    });
  }

  /** `cluster_state` as `node` reports it (`ok`, `fail`), undefined when it does not answer. */
  async stateOf(node: ClusterNode): Promise<string | undefined> {
    return /cluster_state:(\w+)/.exec((await ping(node.port)) ?? '')?.[1];
  }

  /** The node that owns the slot of `key` (e.g. a hash-tagged prefix). */
  async ownerOf(key: string): Promise<ClusterNode> {
    const r = new Redis({ port: this.nodes[0]?.port ?? 0, host: '127.0.0.1', maxRetriesPerRequest: 1 });
    try {
      const slot = Number(await r.cluster('KEYSLOT', key));
      const slots = await r.cluster('SLOTS');
      const range = slots.find(([from, to]) => slot >= from && slot <= to);
      const node = this.nodes.find((n) => n.port === range?.[2]?.[1]);
      if (!node) throw new Error(`no node owns slot ${slot}`);
      return node;
    } finally {
      r.disconnect();
    }
  }

  async startNode(node: ClusterNode): Promise<void> {
    const child = spawn(
      'redis-server',
      [
        '--port', String(node.port), '--cluster-port', String(node.busPort), '--bind', '127.0.0.1', '--dir', node.dir,
        '--cluster-enabled', 'yes', '--cluster-config-file', 'nodes.conf', '--cluster-node-timeout', '2000',
        '--appendonly', 'yes', '--appendfsync', 'everysec', '--save', '',
      ],
      { stdio: 'ignore' },
    );
    trackChild(child);
    node.child = child;
    await waitFor(async () => (await ping(node.port)) !== undefined, { timeoutMs: 10_000, intervalMs: 25, what: `redis-server on ${node.port}` });
  }

  async stopNode(node: ClusterNode, signal: NodeJS.Signals = 'SIGKILL'): Promise<void> {
    const child = node.child;
    if (!child || child.exitCode !== null || child.signalCode !== null) return;
    const exited = new Promise((r) => child.once('exit', r));
    child.kill(signal);
    await exited;
    node.child = undefined;
  }

  async destroy(): Promise<void> {
    this.unregister();
    for (const node of this.nodes) await this.stopNode(node);
    rmSync(this.dir, { recursive: true, force: true });
  }
}
