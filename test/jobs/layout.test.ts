/**
 * The house stays cut along the data path: adapters know nothing of queues, the job runtime knows no flow,
 * and a flow reaches into another only through the contracts listed here.
 */
import assert from 'node:assert/strict';
import { readdirSync, readFileSync } from 'node:fs';
import path from 'node:path';
import { describe, it } from 'node:test';

const SRC = path.resolve(import.meta.dirname, '../../src');

/** Which folders each folder may import from (besides itself). */
const ALLOWED: Record<string, readonly string[]> = {
  infra: [],
  store: [],
  config: ['infra', 'code42'],
  code42: ['infra'],
  xsoar: ['infra', 'config', 'code42'],
  guard: ['infra', 'config', 'store', 'code42', 'xsoar'],
  jobs: ['infra', 'config', 'store', 'guard'],
  poll: ['infra', 'config', 'store', 'jobs', 'code42'],
  forward: ['infra', 'config', 'store', 'jobs', 'guard', 'code42', 'xsoar'],
  sync: ['infra', 'config', 'store', 'jobs', 'guard', 'code42', 'xsoar'],
  ops: ['infra', 'config', 'store', 'jobs', 'guard', 'code42', 'xsoar', 'poll', 'forward', 'sync'],
  cli: ['infra', 'config', 'store', 'jobs', 'guard', 'code42', 'xsoar', 'poll', 'forward', 'sync', 'ops'],
};

/** Contracts between flows: the one module a flow may read of another. */
const CONTRACTS: readonly string[] = [
  'forward/job-data.ts', // the forward queue's payload: the poller writes it, the worker reads it
  'poll/session-change.ts', // the change record: the poller emits it, the updater applies it
  'forward/ledger.ts', // session → incident: the updater and the state sync read it
  'forward/session-enricher.ts', // actor and rule names: the updater reuses the forward path's cache
  'poll/count-index.ts', // what the poller's counts expect: the state sync tells it of its own state writes
];

function sources(dir: string): string[] {
  return readdirSync(dir, { withFileTypes: true }).flatMap((e) => (e.isDirectory() ? sources(path.join(dir, e.name)) : e.name.endsWith('.ts') ? [path.join(dir, e.name)] : []));
}

describe('the house', () => {
  it('every folder imports only what its concern allows', () => {
    const problems: string[] = [];
    for (const file of sources(SRC)) {
      const rel = path.relative(SRC, file);
      const folder = rel.includes(path.sep) ? (rel.split(path.sep)[0] as string) : null;
      if (folder === null) continue; // main.ts, daemon.ts, upstreams.ts: the composition root wires everything
      const allowed = ALLOWED[folder];
      if (!allowed) {
        problems.push(`${rel}: folder ${folder} has no rule in this test`);
        continue;
      }
      for (const m of readFileSync(file, 'utf8').matchAll(/from '(\.\.?\/[^']+)'/g)) {
        const target = path.relative(SRC, path.resolve(path.dirname(file), (m[1] as string).replace(/\.js$/, '.ts')));
        const to = target.includes(path.sep) ? (target.split(path.sep)[0] as string) : target;
        // The CLI's `run` starts the daemon, and its commands build clients the way the daemon does.
        if (folder === 'cli' && (target === 'daemon.ts' || target === 'upstreams.ts')) continue;
        if (to === folder || allowed.includes(to) || CONTRACTS.includes(target.split(path.sep).join('/'))) continue;
        problems.push(`${rel} imports ${target}`);
      }
    }
    assert.deepEqual(problems, []);
  });
});
