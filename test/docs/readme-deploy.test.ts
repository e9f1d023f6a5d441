/**
 * The README as a path: its Deploy commands (the ```sh deploy blocks, in order) run in bash against the
 * simulators and reach a first incident in XSOAR; the Quick start keeps its commands; the links resolve;
 * the Node versions the README, `engines` and the image name agree; and the fault table's counts are
 * the ones the fault tests use.
 */
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, rmSync, symlinkSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { afterEach, describe, it } from 'node:test';
import { fileURLToPath } from 'node:url';
import { generateTenant } from '../sims/code42/index.js';
import { onCleanup, trackChild } from '../helpers/cleanup.js';
import { freePort } from '../helpers/ports.js';
import { startStack, type Stack } from '../helpers/stack.js';

const ROOT = fileURLToPath(new URL('../../', import.meta.url));
const README = readFileSync(join(ROOT, 'README.md'), 'utf8');

/** The fenced blocks whose info string is `sh deploy`, in order. */
function deployBlocks(markdown: string): string[] {
  return [...markdown.matchAll(/^```sh deploy\n([\s\S]*?)^```$/gm)].map((m) => (m[1] as string).trimEnd());
}

/** GitHub's anchor for a heading. */
function slug(heading: string): string {
  return heading
    .trim()
    .toLowerCase()
    .replace(/[^\p{L}\p{N}\s_-]/gu, '')
    .replace(/\s/g, '-');
}

function anchors(markdown: string): Set<string> {
  return new Set([...markdown.matchAll(/^#{1,6} (.+)$/gm)].map((m) => slug(m[1] as string)));
}

interface BashResult {
  code: number | null;
  out: string;
}

/** Runs `script` in bash in `cwd` (its own process group, killed on timeout or clean-up). */
function runBash(script: string, cwd: string, env: Record<string, string>, timeoutMs: number): Promise<BashResult> {
  const child = spawn('bash', ['-c', script], { cwd, env, stdio: ['ignore', 'pipe', 'pipe'], detached: true });
  trackChild(child);
  const killGroup = (): void => {
    try {
      if (child.pid) process.kill(-child.pid, 'SIGKILL');
    } catch {
      // already gone
    }
  };
  const unregister = onCleanup(async () => killGroup());
  let out = '';
  child.stdout.on('data', (d: Buffer) => (out += d.toString()));
  child.stderr.on('data', (d: Buffer) => (out += d.toString()));
  const timer = setTimeout(() => {
    out += `\n[killed after ${timeoutMs} ms]\n`;
    killGroup();
  }, timeoutMs);
  return new Promise((done) => {
    child.on('exit', (code) => {
      clearTimeout(timer);
      // The daemon was started in the background: make sure nothing of the group outlives the script.
      killGroup();
      unregister();
      done({ code, out });
    });
  });
}

describe('README', () => {
  let stack: Stack | undefined;
  let work: string | undefined;
  afterEach(async () => {
    await stack?.close();
    stack = undefined;
    if (work) rmSync(work, { recursive: true, force: true });
    work = undefined;
  });

  it('keeps the Quick start commands and puts Deploy with every step near the top', () => {
    const quick = /## Quick start\n[\s\S]*?```sh\n([\s\S]*?)```/.exec(README)?.[1];
    assert.equal(quick, 'npm ci && npm run demo\nnpm ci && npm test\n');
    const lines = README.split('\n');
    const at = (heading: string): number => lines.findIndex((l) => l === heading) + 1;
    assert.ok(at('## Deploy') > 0 && at('## Deploy') <= 60, `Deploy starts at line ${at('## Deploy')}`);
    const steps = ['### 1. Install', '### 2. The minimal environment', '### 3. Check', '### 4. Run', '### 5. Ready', '### 6. The first incident', '### 7. Failed list'];
    const positions = steps.map(at);
    assert.ok(positions.every((p, i) => p > 0 && (i === 0 || p > (positions[i - 1] as number))), `steps in order: ${positions.join(', ')}`);
    assert.ok((positions.at(-1) as number) <= 180, `the last step starts at line ${positions.at(-1)}`);
    // Each step shows the command for Compose and Kubernetes too (the install and run steps name the image).
    for (const command of ['check', 'failed list']) {
      assert.ok(README.includes(`docker compose -f docker/docker-compose.yml exec forwarder code42-xsoar-forwarder ${command}`) || README.includes(`docker compose -f docker/docker-compose.yml run --rm --build forwarder code42-xsoar-forwarder ${command}`), `compose ${command}`);
      assert.ok(README.includes(`kubectl -n code42-xsoar exec deploy/code42-xsoar-forwarder -- code42-xsoar-forwarder ${command}`), `kubectl ${command}`);
    }
  });

  it('links only to files and headings that exist', () => {
    const files = ['README.md', ...['design', 'guarantees', 'operations', 'configuration', 'performance', 'upgrading'].map((d) => `docs/${d}.md`), 'CHANGELOG.md'];
    for (const file of files) {
      const path = join(ROOT, file);
      assert.ok(existsSync(path), `${file} is missing`);
      const text = readFileSync(path, 'utf8');
      for (const m of text.matchAll(/\]\(([^)\s]+)\)/g)) {
        const link = m[1] as string;
        if (/^[a-z]+:/.test(link)) continue;
        const [target, anchor] = link.split('#') as [string, string | undefined];
        const targetPath = target === '' ? path : resolve(dirname(path), target);
        assert.ok(existsSync(targetPath), `${file}: link to ${link}: no such file`);
        if (anchor && targetPath.endsWith('.md')) assert.ok(anchors(readFileSync(targetPath, 'utf8')).has(anchor), `${file}: link to ${link}: no such heading`);
      }
    }
  });

  it('names the Node versions that engines and the image use', () => {
    const pkg = JSON.parse(readFileSync(join(ROOT, 'package.json'), 'utf8')) as { engines: { node: string } };
    const minimum = /^>=(\d+)\.(\d+)\.0$/.exec(pkg.engines.node);
    assert.ok(minimum, `engines.node is ${pkg.engines.node}`);
    const [major, minor] = [minimum[1], minimum[2]];
    assert.match(README, new RegExp(`\\*\\*Node\\.js\\*\\* ${major}\\.${minor} or later`));
    assert.match(README, new RegExp(`Node ${major}\\.${minor} or later`));
    const image = /^ARG NODE_IMAGE=node:(\d+)\.(\d+)\.(\d+)-slim$/m.exec(readFileSync(join(ROOT, 'docker/Dockerfile'), 'utf8'));
    assert.ok(image, 'the Dockerfile pins NODE_IMAGE');
    assert.ok(Number(image[1]) > Number(major) || (Number(image[1]) === Number(major) && Number(image[2]) >= Number(minor)), 'the image satisfies engines');
    assert.ok(README.includes(`node:${image[1]}.${image[2]}.${image[3]}-slim`), 'the README names the image');
  });

  it('states the counts the fault tests use', () => {
    const guarantees = readFileSync(join(ROOT, 'docs/guarantees.md'), 'utf8');
    const row = (name: string): string => guarantees.split('\n').find((l) => l.startsWith(`| ${name} |`)) ?? '';
    const constant = (file: string, pattern: RegExp): number => Number(pattern.exec(readFileSync(join(ROOT, 'test/faults', file), 'utf8'))?.[1]);
    const kills = constant('crashes.test.ts', /const kills = scaled\((\d+)\)/);
    assert.match(row('crashes'), new RegExp(`SIGKILL at random moments, ${kills} times in one run`));
    const restarts = constant('replicas.test.ts', /const restarts = scaled\((\d+)\)/);
    assert.match(row('replicas'), new RegExp(`SIGKILLed and restarted ${restarts} times`));
    const runs = constant('frozen-replica.test.ts', /const RUNS = (\d+);/);
    assert.match(row('frozen replica (`frozen-replica`)'), new RegExp(`${runs} runs: it stopped before creating all ${runs} times`));
  });

  it('its Deploy commands, run as written, reach a first incident in XSOAR', async () => {
    stack = await startStack({ name: 'readme' });
    const now = Date.now();
    stack.code42.loadTenant(generateTenant({ sessions: 3, seed: 22, beginFrom: now - 30 * 60_000, beginTo: now - 60_000, stateWeights: { OPEN: 1 } }));
    const blocks = deployBlocks(README);
    assert.equal(blocks.length, 8, blocks.join('\n---\n'));
    // Installing is what the suite itself did before this test (npm ci, npm run build): not done twice.
    assert.equal(blocks[0]?.split('\n')[0], 'npm ci && npm run build');
    const port = await freePort();
    const values: Record<string, string> = {
      'CODE42_API_URL=https://api.us.code42.com': `CODE42_API_URL=${stack.env.CODE42_API_URL}`,
      'CODE42_CLIENT_ID=key-REPLACE-ME': `CODE42_CLIENT_ID=${stack.env.CODE42_CLIENT_ID}`,
      'CODE42_CLIENT_SECRET=REPLACE-ME': `CODE42_CLIENT_SECRET=${stack.env.CODE42_CLIENT_SECRET}`,
      'XSOAR_URL=https://xsoar.example.com': `XSOAR_URL=${stack.env.XSOAR_URL}`,
      'XSOAR_API_KEY=REPLACE-ME': `XSOAR_API_KEY=${stack.env.XSOAR_API_KEY}`,
      'localhost:8080': `127.0.0.1:${port}`,
    };
    const script = blocks
      .map((block, i) => {
        let text = i === 0 ? block.split('\n').slice(1).join('\n') : block;
        for (const [from, to] of Object.entries(values)) {
          if (text.includes(from)) text = text.split(from).join(to);
        }
        return `echo "::step ${i}::"\n${text}`;
      })
      .join('\n');
    for (const from of Object.keys(values)) assert.ok(blocks.some((b) => b.includes(from)), `the README no longer shows ${from}`);
    // A directory of its own, as a clone would be: forwarder.env and forwarder.log land there.
    work = mkdtempSync(join(tmpdir(), 'readme-deploy-'));
    for (const entry of ['package.json', 'node_modules', 'dist', 'config']) symlinkSync(join(ROOT, entry), join(work, entry));
    const result = await runBash(
      `set -euo pipefail\n${script}\n`,
      work,
      {
        PATH: process.env.PATH ?? '',
        HOME: process.env.HOME ?? '/tmp',
        // What the deployment's environment adds: its Redis, and a prefix and port of its own here.
        REDIS_URL: stack.env.REDIS_URL as string,
        QUEUE_PREFIX: stack.prefix,
        HTTP_PORT: String(port),
        HTTP_HOST: '127.0.0.1',
        NPM_CONFIG_UPDATE_NOTIFIER: 'false',
      },
      50_000,
    );
    const step = (i: number): string => result.out.split(`::step ${i}::`)[1]?.split('::step ')[0] ?? '';
    assert.equal(result.code, 0, result.out);
    assert.match(step(0), /^\s*code42-xsoar-forwarder \d+\.\d+\.\d+/);
    assert.doesNotMatch(step(2), /^FAIL/m, step(2));
    assert.match(step(2), /^OK {3}xsoar incident type: Code42 Security Alert exists$/m);
    assert.match(step(4), /"ready":true/);
    const created = JSON.parse(step(5).trim().split('\n')[0] ?? '{}') as { msg?: string; alertId?: string; incidentId?: string };
    assert.equal(created.msg, 'incident created');
    assert.ok(created.alertId && created.incidentId, step(5));
    assert.match(step(6), /^no failed jobs and no rejected input$/m, step(6));
    // The start is announced with the version, the incident type is confirmed, the first start's import is warned about.
    const log = readFileSync(join(work, 'forwarder.log'), 'utf8').split('\n').filter((l) => l.startsWith('{')).map((l) => JSON.parse(l) as { level: string; msg: string; version?: string });
    const pkg = JSON.parse(readFileSync(join(ROOT, 'package.json'), 'utf8')) as { version: string };
    assert.equal(log.find((l) => l.msg === 'starting')?.version, pkg.version);
    assert.ok(log.some((l) => l.msg === 'XSOAR incident type Code42 Security Alert exists'), 'incident type confirmed at start');
    assert.ok(log.some((l) => l.level === 'warn' && /^the first run will forward every session since FIRST_FETCH \(1d\)/.test(l.msg)), 'first-start warning');
    const incidents = stack.xsoar.incidents();
    assert.ok(incidents.length >= 1);
    assert.ok(incidents.some((i) => String(i.id) === created.incidentId), `incident ${created.incidentId} in XSOAR`);
  });
});
