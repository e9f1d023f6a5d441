/**
 * `npm run demo` end to end, small: the demo script as a child process (it needs dist/, so build first), with a
 * 60-session tenant. It must finish with exit code 0, report every expected session forwarded once, and leave
 * no daemon process and no Redis keys under its prefix behind.
 */
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { describe, it } from 'node:test';
import { fileURLToPath } from 'node:url';
import { existsSync } from 'node:fs';
import { Redis } from 'ioredis';
import { trackChild } from '../helpers/cleanup.js';

const ROOT = fileURLToPath(new URL('../../', import.meta.url));
const SESSIONS = 60;

interface DemoRun {
  code: number | null;
  output: string;
}

function runDemo(env: Record<string, string>, timeoutMs: number): Promise<DemoRun> {
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, ['--import', 'tsx', 'scripts/demo.ts'], {
      cwd: ROOT,
      env: { ...process.env, ...env },
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    trackChild(child);
    let output = '';
    child.stdout.on('data', (d: Buffer) => (output += d.toString()));
    child.stderr.on('data', (d: Buffer) => (output += d.toString()));
    const timer = setTimeout(() => {
      child.kill('SIGINT'); // the demo cleans up on SIGINT
      reject(new Error(`the demo did not finish within ${timeoutMs} ms:\n${output}`));
    }, timeoutMs);
    child.on('exit', (code) => {
      clearTimeout(timer);
      resolve({ code, output });
    });
  });
}

function match(output: string, re: RegExp, what: string): RegExpExecArray {
  const m = re.exec(output);
  assert.ok(m, `${what} not found in the demo output:\n${output}`);
  return m;
}

function alive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch {
    return false;
  }
}

describe('npm run demo', () => {
  // Bounds, not speed targets: the demo takes seconds, a loaded CI machine may take many times that.
  it('forwards every expected session once, prints the summary and cleans up', { timeout: 150_000 }, async () => {
    const { code, output } = await runDemo({ DEMO_SESSIONS: String(SESSIONS), DEMO_TIMEOUT: '120' }, 140_000);
    assert.equal(code, 0, output);

    const expected = Number(match(output, /^expected\s+(\d+) of (\d+) sessions/m, 'the expected count')[1]);
    assert.ok(expected > 0 && expected <= SESSIONS, `expected count ${expected}`);
    match(output, new RegExp(`^forwarded ${expected}/${expected} \\|`, 'm'), 'the final progress line');

    // The summary: severity rows add up to the total, which is one incident per expected session.
    const table = match(output, /^XSOAR incidents by severity\n((?: {2}\d.*\n)+)/m, 'the severity table');
    const rows = (table[1] ?? '').trimEnd().split('\n');
    const bySeverity = rows.map((row) => Number(/(\d+)\s*$/.exec(row)?.[1]));
    assert.equal(bySeverity.reduce((a, b) => a + b, 0), expected, rows.join('\n'));
    match(output, /^Top actors \(code42username/m, 'the top actors table');
    const total = match(output, /^total\s+(\d+) incidents for (\d+) sessions \(expected (\d+); duplicates 0, unexpected 0\)/m, 'the total line');
    assert.deepEqual([Number(total[1]), Number(total[2]), Number(total[3])], [expected, expected, expected]);

    // One incident the way an analyst sees it: name, severity, the code42* fields, the first file-event rows.
    const view = match(output, /^One incident as an analyst sees it \(XSOAR incident \d+, type Code42 Security Alert\)\n((?: {2}.*\n)+)/m, 'the incident view')[1] ?? '';
    assert.match(view, /^ {2}name {8}\S/m);
    assert.match(view, /^ {2}severity {4}[1-4] \((Low|Medium|High|Critical)\)$/m);
    for (const field of ['code42alertid', 'code42alertstate', 'code42username', 'code42severity', 'code42alerturl']) assert.match(view, new RegExp(`^ {2}${field} +\\S`, 'm'), field);
    assert.match(view, /^ {2}code42fileevents \(\d+ rows?/m);
    assert.match(view, /^ {4}eventtimestamp +eventtype +filename/m);

    // Every log path it printed still exists (it names none it then deletes).
    for (const path of output.match(/\/\S*c42x-demo-[^\s:;]*/g) ?? []) assert.ok(existsSync(path), `the demo printed ${path}, which is gone`);

    // Nothing left behind: the daemon has exited and, in a shared Redis, the demo's prefix is empty.
    const pid = Number(match(output, /node dist\/main\.js run \(pid (\d+)\)/, 'the daemon pid')[1]);
    assert.equal(alive(pid), false, `daemon ${pid} still running`);
    const prefix = match(output, /keys under (demo-\d+):\*/, 'the key prefix')[1] ?? '';
    if (/^redis\s+reusing /m.test(output)) {
      // The demo reused the Redis it found where this test looks (a private one is gone with its keys).
      const redis = new Redis(process.env.REDIS_URL ?? 'redis://127.0.0.1:6379', { maxRetriesPerRequest: 2, protocol: 2 });
      try {
        const left: string[] = [];
        let cursor = '0';
        do {
          const [next, keys] = await redis.scan(cursor, 'MATCH', `${prefix}:*`, 'COUNT', 1000);
          left.push(...keys);
          cursor = next;
        } while (cursor !== '0');
        assert.deepEqual(left, [], `keys left under ${prefix}:*`);
      } finally {
        redis.disconnect();
      }
    }
  });
});
